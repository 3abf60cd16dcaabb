"""The LR range test (Smith 2015, fast.ai's lr_find): train briefly while the LR grows exponentially, record the
smoothed loss against the LR, and suggest rates from the curve. The model's weights are restored afterwards."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ExponentialLR

from .base_weights import LoadedBase
from .config import FineTuneConfig
from .errors import Cancelled, EngineError
from .image_loaders import reseed_for_epoch, train_loader
from .job_setup import Event, Job, build_model, log_event, open_job, private_rng
from .precision import grad_scaler
from .resnet_classifier import N_LAYER_GROUPS, LayerGroupModel
from .schedule import make_optimizer
from .train_loop import Batch, LoopSettings, ignore_event, never_stop, train_step

SMOOTH_BETA = 0.98
DIVERGE_FACTOR = 4.0
AUTO_LR_RANGE: dict[str, Any] = {"start_lr": 1e-7, "end_lr": 10.0, "num_batches": 100, "freeze_to": None}
"""The range test auto_lr runs (image and text jobs): find_lr's defaults."""


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
    """Middle of the longest run where the loss keeps falling: the longest decreasing subsequence, which a
    little noise cannot cut short, from its first point to its last (fast.ai's "valley")."""
    n = len(losses)
    length, prev = [1] * n, [-1] * n
    for i in range(n):
        for j in range(i):
            if losses[j] > losses[i] and length[j] + 1 > length[i]:
                length[i], prev[i] = length[j] + 1, j
    end = max(range(n), key=length.__getitem__)
    start = end
    while prev[start] >= 0:
        start = prev[start]
    return lrs[(start + end) // 2]


def _steepest(lrs: list[float], losses: list[float]) -> float:
    """Where d(loss)/d(log lr) is most negative, by differences across +-w points (w = a tenth of the curve, at
    least 1): early on the average holds few batches, and a narrower difference can pick their noise. The w
    points at either end have no such difference."""
    w = max(1, len(lrs) // 10)
    logs = [math.log(lr) for lr in lrs]
    slopes = {i: (losses[i + w] - losses[i - w]) / (logs[i + w] - logs[i - w]) for i in range(w, len(lrs) - w)}
    return lrs[min(slopes, key=slopes.__getitem__)]


def suggest_lrs(points: list[list[float]]) -> dict[str, float]:
    """Suggestions from [lr, smoothed loss] points (increasing lr). The first tenth of the points is skipped:
    there the moving average has seen few batches.

    - "valley": middle of the longest stretch where the loss keeps falling (fast.ai's default; robust);
    - "steepest": the lr where the loss falls fastest against log(lr);
    - "minimum_div_10": a tenth of the lr at the lowest loss, where the loss is still falling.
    """
    if not points:
        raise ValueError("no points to suggest a learning rate from")
    kept = points[len(points) // 10:]
    lrs, losses = [p[0] for p in kept], [p[1] for p in kept]
    lowest = lrs[min(range(len(losses)), key=losses.__getitem__)]
    if len(kept) < 3:
        return {"valley": lowest, "steepest": lowest, "minimum_div_10": lowest / 10}
    return {"valley": _valley(lrs, losses), "steepest": _steepest(lrs, losses), "minimum_div_10": lowest / 10}


def _check_range(start_lr: float, end_lr: float, num_batches: int) -> None:
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr (got {start_lr}, {end_lr})")
    if num_batches < 2:
        raise ValueError(f"num_batches must be >= 2 (got {num_batches})")


def _check_freeze_to(freeze_to: int) -> None:
    if not 0 <= freeze_to < N_LAYER_GROUPS:
        raise ValueError(f"freeze_to must be in [0, {N_LAYER_GROUPS - 1}] (got {freeze_to})")


def lr_range_test(model: nn.Module, batches: Iterable[Batch],
                  make_optimizer: Callable[[], torch.optim.Optimizer] | None = None, *,
                  settings: LoopSettings | None = None, start_lr: float = 1e-7, end_lr: float = 10.0,
                  num_batches: int = 100, on_event: Callable[[Event], None] = ignore_event,
                  should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """Train `model` on up to num_batches batches (cycling `batches`) while every param group's LR grows
    exponentially from start_lr to end_lr, then put back the model's weights, buffers and train/eval mode and
    torch's RNG state, so the test leaves no trace.

    make_optimizer builds a fresh optimizer over the parameters to train (default: AdamW over every trainable
    parameter); its LRs are overwritten. The loss is smoothed by an exponential moving average with bias
    correction (beta 0.98); the test stops early, diverged, when the smoothed loss exceeds 4x the best one or
    the loss is not finite. Emits batch events with phase "lr_find" (epoch and epochs 0: not an epoch).
    Returns {"points": [[lr, smoothed_loss], ...], "suggestions": suggest_lrs(points), "diverged": bool}.
    """
    _check_range(start_lr, end_lr, num_batches)
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
         settings: LoopSettings, num_batches: int, on_event: Callable[[Event], None],
         should_stop: Callable[[], bool]) -> dict[str, Any]:
    scaler = grad_scaler(settings.device, settings.precision)
    model.train()
    points: list[list[float]] = []
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
        average = SMOOTH_BETA * average + (1 - SMOOTH_BETA) * loss
        smoothed = average / (1 - SMOOTH_BETA**b)
        points.append([lr, smoothed])
        best = min(best, smoothed)
        on_event({"type": "batch", "phase": "lr_find", "epoch": 0, "epochs": 0, "batch": b, "batches": num_batches,
                  "loss": loss, "smoothed_loss": smoothed, "lr": lr, "momentum": momentum, "group_lrs": group_lrs})
        if smoothed > DIVERGE_FACTOR * best:
            diverged = True
            break
        sched.step()
    if not points:
        raise EngineError("the LR range test's first loss was not finite: lower start_lr")
    return {"points": points, "suggestions": suggest_lrs(points), "diverged": diverged}


def job_range_test(cfg: FineTuneConfig, job: Job, model: LayerGroupModel, base: LoadedBase, *, start_lr: float,
                   end_lr: float, num_batches: int, freeze_to: int | None, on_event: Callable[[Event], None],
                   should_stop: Callable[[], bool]) -> dict[str, Any]:
    """The range test as a job runs it: the first stage's image size and freeze depth (unless freeze_to is
    given), the job's optimizer settings, regularisers and precision, on the training set."""
    first = cfg.resolved_stages()[0]
    depth = first.freeze_to if freeze_to is None else freeze_to
    model.freeze_to(depth)
    loader = reseed_for_epoch(train_loader(cfg, job.data, base, job.device, first.image_size), cfg.seed, 0)
    on_event(log_event(f"LR range test: lr {start_lr:g} to {end_lr:g} over up to {num_batches} batches, "
                       f"freeze_to {depth}, image size {first.image_size}"))
    result = lr_range_test(model, loader, lambda: make_optimizer(model.layer_groups(), cfg),
                           settings=LoopSettings.for_job(cfg, job.device, job.precision), start_lr=start_lr,
                           end_lr=end_lr, num_batches=num_batches, on_event=on_event, should_stop=should_stop)
    on_event(suggestions_event(result))
    return result


def suggestions_event(result: dict[str, Any]) -> Event:
    """The log line a job writes after its range test (lr_range_test's result)."""
    return log_event("LR range test suggestions: " + ", ".join(
        f"{name} {lr:.3g}" for name, lr in result["suggestions"].items())
        + (" (stopped early: the loss diverged)" if result["diverged"] else ""))


def find_lr(cfg: FineTuneConfig, dataset_dir: str | Path, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_batches: int = 100, freeze_to: int | None = None,
            on_event: Callable[[Event], None] = ignore_event,
            should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """The LR range test on a data set with the model fine_tune would start from (same base weights, seed,
    first stage). freeze_to defaults to the first stage's. Returns lr_range_test's result; writes nothing.
    Raises DatasetError, WeightsUnavailable, Cancelled, ValueError (bad range) or another EngineError."""
    _check_range(start_lr, end_lr, num_batches)
    if freeze_to is not None:
        _check_freeze_to(freeze_to)
    job = open_job(cfg, dataset_dir, on_event)
    with private_rng(cfg.seed, job.device):
        model, base = build_model(cfg, job, on_event)
        return job_range_test(cfg, job, model, base, start_lr=start_lr, end_lr=end_lr, num_batches=num_batches,
                              freeze_to=freeze_to, on_event=on_event, should_stop=should_stop)
