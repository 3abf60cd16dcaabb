"""The training step and the epoch loops around it. fine_tune, the LR range test and the throughput benchmark
all drive these functions, so the benchmark measures the loop the jobs run."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import clip_grad_norm_
from torch.optim.lr_scheduler import LRScheduler

from fineserve_common import events

from .distributed import mean_across, share_buffers, sum_across
from .errors import Cancelled, EngineError
from .precision import autocast
from .regularisation import mixup, training_loss

Batch = tuple[torch.Tensor, torch.Tensor]
IGNORE_INDEX = -100
"""Targets with this value count in no loss or metric (torch's cross_entropy default): a segmentation mask's
void pixels."""


class Batches(Protocol):
    """A DataLoader, or a list of (x, y) batches already in memory (the benchmark's)."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...


EngineEvent = events.Log | events.Batch | events.Epoch | events.Checkpoint
"""What the engine reports through on_event (fineserve_common.events)."""
OnEvent = Callable[[EngineEvent], None]
ShouldStop = Callable[[], bool]


def ignore_event(event: EngineEvent) -> None:
    """The default on_event: nobody listening."""


def never_stop() -> bool:
    return False


@dataclass(frozen=True)
class LoopSettings:
    """How each batch is computed: device, precision, memory format and the training-only regularisers."""

    device: torch.device
    precision: str = "fp32"
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    grad_clip: float = 0.0
    channels_last: bool = False
    """NHWC activations: what tensor cores want under mixed precision on GPU."""
    multi_label: bool = False
    """Targets are multi-hot label vectors (sigmoid + binary cross-entropy) rather than class indices."""
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    """The training loss of (output, target); None = cross-entropy with the label smoothing and mixup above."""

    def inputs(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, settings: LoopSettings) -> torch.Tensor:
    """One optimizer step on one batch; returns the (detached, unsynchronised) training loss."""
    x, y = settings.inputs(x, y)
    mixed = None
    if settings.mixup_alpha:
        x, y_b, lam = mixup(x, y, settings.mixup_alpha)
        mixed = (y_b, lam)
    with autocast(settings.device, settings.precision):
        logits = model(x)
    if settings.loss_fn is not None:
        loss = settings.loss_fn(logits.float(), y)
    else:
        loss = training_loss(logits.float(), y, settings.label_smoothing, mixed, settings.multi_label)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if settings.grad_clip:
        scaler.unscale_(opt)  # clip the true gradients, not fp16 loss-scaled ones
        clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], settings.grad_clip)
    scaler.step(opt)
    scaler.update()
    return loss.detach()


READ_EVERY = {"cuda": 32, "cpu": 1}
"""Batches between two reads of the losses on each device type: a read waits for the device, so on a GPU the
losses of 32 steps are read at once (one wait instead of 32) while later steps are already queued; a CPU step
has finished when it returns, so its loss costs nothing to read at once."""


def train_epoch(model: nn.Module, batches: Batches, opt: torch.optim.Optimizer, sched: LRScheduler,
                scaler: torch.amp.GradScaler, settings: LoopSettings, *, phase: str = "train", epoch: int = 1,
                epochs: int = 1, on_event: OnEvent = ignore_event,
                should_stop: Callable[[], bool] = never_stop) -> float:
    """Train one pass over batches, stepping sched after every batch; returns the mean training loss (over all
    ranks under data-parallel training).

    Emits an events.Batch per batch with its loss, the head group's LR and beta1 and every group's LR as applied
    in that batch. The losses stay on the device and are read READ_EVERY batches at a time (and at the epoch's
    end), each read after the next batch has been queued, so the host never waits for the device step by step.
    Raises Cancelled (after reporting the batches done) when should_stop() says so, and EngineError on a
    non-finite loss.
    """
    model.train()
    n = len(batches)
    read_every = READ_EVERY.get(settings.device.type, READ_EVERY["cuda"])
    total = 0.0
    pending: list[tuple[dict[str, Any], torch.Tensor]] = []

    def report(done: list[tuple[dict[str, Any], torch.Tensor]]) -> None:
        nonlocal total
        if not done:
            return
        values = torch.stack([loss for _, loss in done]).tolist()  # the one wait for the device
        for (fields, _), value in zip(done, values, strict=True):
            if not math.isfinite(value):
                raise EngineError(f"training diverged (loss {value}) in epoch {epoch} batch {fields['batch']}: "
                                  "lower the learning rate")
            total += value
            on_event(events.Batch(phase=phase, epoch=epoch, epochs=epochs, batches=n, loss=value, **fields))

    for b, (x, y) in enumerate(batches, 1):
        if should_stop():
            report(pending)
            raise Cancelled(f"cancelled during epoch {epoch} before batch {b}")
        loss = train_step(model, x, y, opt, scaler, settings)
        head = opt.param_groups[-1]
        fields = {"batch": b, "lr": head["lr"], "momentum": head["betas"][0],
                  "group_lrs": tuple(g["lr"] for g in opt.param_groups)}
        sched.step()
        if len(pending) >= read_every:
            report(pending)
            pending = []
        pending.append((fields, loss))
    report(pending)
    share_buffers(model)
    return mean_across(total / n, settings.device)


def valid_logits(model: nn.Module, batches: Iterable[Batch], settings: LoopSettings,
                 should_stop: Callable[[], bool] = never_stop) -> Iterator[Batch]:
    """(float32 logits, targets) per batch on the device, in eval mode without gradients: what every
    validation metric is computed from. Raises Cancelled when should_stop() says so."""
    model.eval()
    with torch.inference_mode():
        for b, (x_in, y_in) in enumerate(batches, 1):
            if should_stop():
                raise Cancelled(f"cancelled during validation before batch {b}")
            x, y = settings.inputs(x_in, y_in)
            with autocast(settings.device, settings.precision):
                logits = model(x).float()
            yield logits, y


def validate(model: nn.Module, batches: Iterable[Batch], settings: LoopSettings,
             should_stop: Callable[[], bool] = never_stop,
             observe: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> tuple[float, float]:
    """Mean (unsmoothed) cross-entropy and accuracy over all targets (images, or a mask's pixels) that are not
    IGNORE_INDEX, over every rank's shard under data-parallel training; no mixup, no augmentation.
    observe(logits, y) sees every batch, for task-specific metrics."""
    total_loss = torch.zeros((), dtype=torch.float64, device=settings.device)
    correct = torch.zeros((), dtype=torch.int64, device=settings.device)
    count = torch.zeros((), dtype=torch.int64, device=settings.device)
    for logits, y in valid_logits(model, batches, settings, should_stop):
        total_loss += F.cross_entropy(logits, y, reduction="sum", ignore_index=IGNORE_INDEX)
        correct += (logits.argmax(dim=1) == y).sum()
        count += (y != IGNORE_INDEX).sum()
        if observe:
            observe(logits, y)
    loss_sum, correct_sum, total = sum_across(torch.stack([total_loss, correct.double(), count.double()])).tolist()
    if not total:
        raise EngineError("the validation set has no labelled targets (every pixel is void?)")
    return loss_sum / total, correct_sum / total
