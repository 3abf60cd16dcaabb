"""The LR range test (Smith 2015, fast.ai's lr_find): train briefly while the LR grows exponentially, record the
smoothed loss against the LR, and suggest rates from the curve. The model's weights are restored afterwards."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ExponentialLR

from fineserve_common import events
from fineserve_common.events import LrFinderResult

from .errors import Cancelled, EngineError
from .precision import grad_scaler
from .train_loop import Batch, LoopSettings, OnEvent, ignore_event, never_stop, train_step

SMOOTH_BETA = 0.98
"""fast.ai's smoothing over its 100-batch test: the average reaches back about 50 batches (half the test)."""
DIVERGE_FACTOR = 4.0
AUTO_LR_RANGE: dict[str, Any] = {"start_lr": 1e-7, "end_lr": 10.0, "num_batches": 100, "freeze_to": None}
"""The range test auto_lr runs: find_lr's defaults, num_batches being the most (auto_lr_batches)."""
AUTO_LR_MIN_BATCHES = 16
"""The fewest batches auto_lr's range test runs: half a decade of lr a batch over 1e-7..10."""


def auto_lr_pick(random_image_body: bool) -> str:
    """The suggestion auto_lr trains at: fast.ai's valley for pretrained weights; a tenth of the lowest loss's
    rate (Smith's rule, fast.ai v1's lr_min) for a ResNet from random weights, whose BatchNorm layers take rates
    the valley, placed in a long slow descent, undershoots by 5-50x (measured: benchmarks/auto_lr_grid.py)."""
    return "minimum_div_10" if random_image_body else "valley"


def auto_lr_batches(epoch_batches: int, most: int) -> int:
    """auto_lr's range test on a small data set: at most an epoch's batches (and at most `most`), at least
    AUTO_LR_MIN_BATCHES, so that the test costs a fraction of the fine-tune it prepares, not a second one."""
    return min(most, max(AUTO_LR_MIN_BATCHES, epoch_batches))


def smoothing(num_batches: int) -> float:
    """The moving average's beta for a test of num_batches: fast.ai's 0.98 at 100 batches or more; a shorter
    test averages over the same share of itself (1 - 2/n), or its average would still hold the first batches
    when the loss turns."""
    return min(SMOOTH_BETA, 1 - 2 / num_batches)


def _cycle(batches: Iterable[Batch]) -> Iterator[Batch]:
    """Pass after pass over batches (a DataLoader reshuffles each pass), for tests longer than an epoch."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise EngineError("the LR range test got no batches")


def _valley(lrs: list[float], losses: list[float]) -> float:
    """fast.ai's "valley": find the longest decreasing subsequence of the loss (which a little noise cannot cut
    short), take the window that ends at its last point and is as long as it is, and answer the rate about half
    way in (a third plus a sixth of the window). Its own first point can lie far to the left on a flat, noisy
    curve; the window stays next to where the loss last fell."""
    n = len(losses)
    length = [1] * n
    for i in range(n):
        for j in range(i):
            if losses[j] > losses[i] and length[j] + 1 > length[i]:
                length[i] = length[j] + 1
    end = max(range(n), key=length.__getitem__)
    run = length[end]
    return lrs[max(0, end - run + int(run / 3) + int(run / 6))]


def _steepest(lrs: list[float], losses: list[float]) -> float:
    """fast.ai's "steep": the left point of the adjacent pair across which the loss falls fastest against
    log(lr)."""
    logs = [math.log(lr) for lr in lrs]
    slopes = [(losses[i + 1] - losses[i]) / (logs[i + 1] - logs[i]) for i in range(len(lrs) - 1)]
    return lrs[min(range(len(slopes)), key=slopes.__getitem__)]


SKIP_END = 20
"""The curve's last twentieth is left out before suggesting (where a stopped test's loss blows up): fast.ai leaves
out the last 5 points of its 100-batch test; a 16-batch test keeps all of its points."""


def suggest_lrs(points: Sequence[Sequence[float]]) -> dict[str, float]:
    """Suggestions from [lr, smoothed loss] points (increasing lr), as fast.ai's lr_find makes them: the first
    tenth of the points (the moving average has seen few batches there) and the last twentieth are left out.

    - "valley": about half way into the window of the longest decreasing run (fast.ai's default; robust);
    - "steepest": the lr where the loss falls fastest against log(lr);
    - "minimum_div_10": a tenth of the lr at the lowest loss, where the loss is still falling.
    """
    if not points:
        raise ValueError("no points to suggest a learning rate from")
    kept = points[len(points) // 10:len(points) - len(points) // SKIP_END]
    lrs, losses = [p[0] for p in kept], [p[1] for p in kept]
    lowest = lrs[min(range(len(losses)), key=losses.__getitem__)]
    if len(kept) < 3:
        return {"valley": lowest, "steepest": lowest, "minimum_div_10": lowest / 10}
    return {"valley": _valley(lrs, losses), "steepest": _steepest(lrs, losses), "minimum_div_10": lowest / 10}


def check_range(start_lr: float, end_lr: float, num_batches: int) -> None:
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr (got {start_lr}, {end_lr})")
    if num_batches < 2:
        raise ValueError(f"num_batches must be >= 2 (got {num_batches})")


def check_freeze_to(freeze_to: int, n_groups: int) -> None:
    if not 0 <= freeze_to < n_groups:
        raise ValueError(f"freeze_to={freeze_to}: this model has {n_groups} layer groups, so it must be in "
                         f"[0, {n_groups - 1}]")


def lr_range_test(model: nn.Module, batches: Iterable[Batch],
                  make_optimizer: Callable[[], torch.optim.Optimizer] | None = None, *,
                  settings: LoopSettings | None = None, start_lr: float = 1e-7, end_lr: float = 10.0,
                  num_batches: int = 100, on_event: OnEvent = ignore_event,
                  should_stop: Callable[[], bool] = never_stop) -> LrFinderResult:
    """Train `model` on up to num_batches batches (cycling `batches`) while every param group's LR grows
    exponentially from start_lr to end_lr, then put back the model's weights, buffers and train/eval mode and
    torch's RNG state, so the test leaves no trace.

    make_optimizer builds a fresh optimizer over the parameters to train (default: AdamW over every trainable
    parameter); its LRs are overwritten. The loss is smoothed by an exponential moving average with bias
    correction (beta: smoothing(num_batches), 0.98 at 100 batches); the test stops early, diverged, when the
    smoothed loss exceeds 4x the best one or the loss is not finite. Emits batch events with phase "lr_find"
    (epoch and epochs 0: not an epoch).
    Returns the (lr, smoothed loss) points, suggest_lrs(points) and whether the test diverged.
    """
    check_range(start_lr, end_lr, num_batches)
    device = next(model.parameters()).device
    settings = settings or LoopSettings(device)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            opt = make_optimizer() if make_optimizer else torch.optim.AdamW(
                [p for p in model.parameters() if p.requires_grad], lr=start_lr, betas=(0.9, 0.99))
            for group in opt.param_groups:
                group["lr"] = start_lr
            sched = ExponentialLR(opt, gamma=(end_lr / start_lr) ** (1 / (num_batches - 1)))
            return _run(model, batches, opt, sched, settings, num_batches, on_event, should_stop)
    finally:
        model.load_state_dict(saved)
        model.train(was_training)


def _run(model: nn.Module, batches: Iterable[Batch], opt: torch.optim.Optimizer, sched: ExponentialLR,
         settings: LoopSettings, num_batches: int, on_event: OnEvent,
         should_stop: Callable[[], bool]) -> LrFinderResult:
    scaler = grad_scaler(settings.device, settings.precision)
    beta = smoothing(num_batches)
    model.train()
    points: list[tuple[float, float]] = []
    average, best, diverged = 0.0, math.inf, False
    for b, (x, y) in enumerate(_cycle(batches), 1):
        if b > num_batches:
            break
        if should_stop():
            raise Cancelled(f"LR range test cancelled before batch {b}")
        head = opt.param_groups[-1]
        lr, momentum, group_lrs = head["lr"], head["betas"][0], [g["lr"] for g in opt.param_groups]
        loss = train_step(model, x, y, opt, scaler, settings).item()
        if not math.isfinite(loss):
            diverged = True
            break
        average = beta * average + (1 - beta) * loss
        smoothed = average / (1 - beta**b)
        points.append((lr, smoothed))
        best = min(best, smoothed)
        on_event(events.Batch(phase="lr_find", epoch=0, epochs=0, batch=b, batches=num_batches, loss=loss, lr=lr,
                       momentum=momentum, group_lrs=tuple(group_lrs)))
        if smoothed > DIVERGE_FACTOR * best:
            diverged = True
            break
        sched.step()
    if not points:
        raise EngineError("the LR range test's first loss was not finite: lower start_lr")
    return LrFinderResult(points, suggest_lrs(points), diverged)


def suggestions_event(result: LrFinderResult) -> events.Log:
    """The log line a job writes after its range test (lr_range_test's result)."""
    return events.Log("LR range test suggestions: " + ", ".join(
        f"{name} {lr:.3g}" for name, lr in result.suggestions.items())
        + (" (stopped early: the loss diverged)" if result.diverged else ""))
