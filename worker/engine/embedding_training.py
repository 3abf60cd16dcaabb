"""Training the embedding models (collaborative filtering, tabular) with the shared recipe: one 1cycle of AdamW
with decoupled weight decay (schedule.py), the engine's train_epoch, a checkpoint after every epoch that a rerun
on the same out_dir resumes from, and safetensors + JSON card at the end."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    TrainingState,
    job_fingerprint,
    load_checkpoint,
    remove_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from .embedding_config import EmbeddingRecipe
from .job_setup import Event, log_event, private_rng
from .model_card import FORMAT_VERSION, save_model
from .precision import grad_scaler, resolve_device, resolve_precision
from .schedule import make_optimizer, one_cycle
from .train_loop import LoopSettings, ignore_event, never_stop, train_epoch

Batch = tuple[torch.Tensor, torch.Tensor]
EVAL_BATCH = 8192


class TensorBatches:
    """Mini-batches of in-memory tensors in a seeded order that changes every epoch (set_epoch). A last batch
    of one row is dropped: BatchNorm cannot train on it (the order changes, so no row is lost for good)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = 1

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size + (n % self.batch_size > 1)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


def predict(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Eval-mode outputs for all rows, in chunks, on the CPU."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(part.to(device)).float().cpu() for part in x.split(EVAL_BATCH)])


def fit(model: nn.Module, cfg: EmbeddingRecipe, data: tuple[torch.Tensor, torch.Tensor],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        evaluate: Callable[[nn.Module], dict[str, float]], out_dir: Path, fingerprint_of: Any,
        device: torch.device, precision: str, on_event: Callable[[Event], None],
        should_stop: Callable[[], bool]) -> list[dict[str, float]]:
    """cfg.epochs of one 1cycle; returns each epoch's metrics (train_loss plus what evaluate returns)."""
    fingerprint = job_fingerprint(cfg, fingerprint_of)  # type: ignore[arg-type]  # duck-typed: to_dict()
    resume = load_checkpoint(out_dir, fingerprint, lambda message: on_event(log_event(message)))
    batches = TensorBatches(*data, cfg.batch_size, cfg.seed)
    if hasattr(model, "decay_groups"):
        decayed, undecayed = model.decay_groups()
        opt = make_optimizer([decayed, undecayed], cfg)  # type: ignore[arg-type]  # duck-typed recipe fields
        opt.param_groups[1]["weight_decay"] = 0.0
    else:
        opt = make_optimizer([nn.ModuleList([model])], cfg)  # type: ignore[arg-type]
    sched = one_cycle(opt, cfg, [cfg.lr] * len(opt.param_groups), cfg.epochs * len(batches))  # type: ignore[arg-type]
    scaler = grad_scaler(device, precision)
    settings = LoopSettings(device, precision, loss_fn=loss_fn)
    history: list[dict[str, float]] = []
    epoch = 0
    if resume:
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimizer)
        sched.load_state_dict(resume.scheduler)
        scaler.load_state_dict(resume.scaler)
        epoch, history = resume.epoch, resume.history
        restore_rng(resume.rng, device)
        on_event(log_event(f"resumed from checkpoint after epoch {epoch}"))
    while epoch < cfg.epochs:
        epoch += 1
        start = time.perf_counter()
        batches.epoch = epoch
        train_loss = train_epoch(model, batches, opt, sched, scaler, settings, phase="stage-0", epoch=epoch,
                                 epochs=cfg.epochs, on_event=on_event, should_stop=should_stop)
        metrics = {"train_loss": train_loss, **evaluate(model)}
        history.append(metrics)
        on_event({"type": "epoch", "phase": "stage-0", "epoch": epoch, "epochs": cfg.epochs, **metrics,
                  "seconds": time.perf_counter() - start})
        state = TrainingState(0, epoch, model.state_dict(), opt.state_dict(), sched.state_dict(), scaler.state_dict(),
                              {}, history, rng_state(device))
        path = save_checkpoint(out_dir, state, fingerprint)
        on_event({"type": "checkpoint", "epoch": epoch, "path": str(path)})
    return history


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """These models are small and take thousands of tiny steps: on CPU one intra-op thread beats several, whose
    synchronisation costs more than the work (MovieLens-100k's 5 epochs: ~12 s on one thread, minutes on two
    threads of a busy 2-core machine). Restores the caller's setting."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_embedding_job(cfg: EmbeddingRecipe, out_dir: str | Path, task: str, prepare: Callable[..., Any],
                      on_event: Callable[[Event], None] = ignore_event,
                      should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """The frame both tasks share: device, seeded RNG, fit, card, save. prepare(device) returns
    (model, (x, y), loss_fn, evaluate, card fields, extra tensors, fingerprint data)."""
    out = Path(out_dir)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    on_event(log_event(f"device {device}, precision {precision} (requested {cfg.precision})"))
    started = time.perf_counter()
    with private_rng(cfg.seed, device), one_cpu_thread(device):
        model, data, loss_fn, evaluate, card_fields, extra, fingerprint_of = prepare(device)
        history = fit(model.to(device), cfg, data, loss_fn, evaluate, out, fingerprint_of, device, precision,
                      on_event, should_stop)
    card = {
        "format_version": FORMAT_VERSION,
        "task": task,
        **card_fields,
        "hyperparameters": cfg.to_dict(),
        "epochs_trained": len(history),
        "metrics": history[-1],
        "train_seconds": round(time.perf_counter() - started, 3),
        "precision": precision,
        "versions": {"torch": torch.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    save_model(out, {**model.state_dict(), **extra}, card)
    remove_checkpoint(out)
    on_event(log_event(f"saved model to {out}"))
    return {"metrics": card["metrics"], "card": card, "epochs_trained": len(history)}


def rmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return math.sqrt(torch.mean((pred.double() - target.double()) ** 2).item())

