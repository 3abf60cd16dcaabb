"""fast.ai's `fine_tune` for image classification: train the new head on a frozen body with 1cycle, then
unfreeze and train everything with 1cycle and discriminative learning rates."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.nn import functional as F
from torch.optim.lr_scheduler import OneCycleLR
from torch.utils.data import DataLoader

from .base_weights import LoadedBase, load_base_weights
from .config import FineTuneConfig
from .errors import Cancelled, EngineError
from .image_folders import ImageFileDataset, ImageFolders, scan_image_folders
from .image_transforms import train_transform, valid_transform
from .model_card import FORMAT_VERSION, save_model
from .precision import autocast, grad_scaler, resolve_device, resolve_precision
from .resnet_classifier import ResNetClassifier

Event = dict[str, Any]


def _log(message: str) -> Event:
    return {"type": "log", "message": message}


def even_mults(start: float, stop: float, n: int) -> list[float]:
    """n rates spaced geometrically from start to stop, one per layer group (fast.ai's even_mults)."""
    step = (stop / start) ** (1 / (n - 1))
    return [start * step**i for i in range(n)]


@dataclass
class _Run:
    """State shared by the phases of one job."""

    cfg: FineTuneConfig
    model: ResNetClassifier
    device: torch.device
    precision: str
    train_dl: DataLoader
    valid_dl: DataLoader
    on_event: Callable[[Event], None]
    should_stop: Callable[[], bool]
    total_epochs: int
    epoch: int = 0

    def check_stop(self, batch: int) -> None:
        if self.should_stop():
            raise Cancelled(f"cancelled during epoch {self.epoch} before batch {batch}")


def _train_epoch(run: _Run, phase: str, opt: torch.optim.Optimizer, sched: OneCycleLR,
                 scaler: torch.amp.GradScaler) -> float:
    run.model.train()
    losses = []
    n = len(run.train_dl)
    for b, (x, y) in enumerate(run.train_dl, 1):
        run.check_stop(b)
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        with autocast(run.device, run.precision):
            logits = run.model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        lr = opt.param_groups[-1]["lr"]
        sched.step()
        value = loss.item()
        if not math.isfinite(value):
            raise EngineError(f"training diverged (loss {value}) in epoch {run.epoch} batch {b}: lower lr")
        losses.append(value)
        run.on_event({"type": "batch", "phase": phase, "epoch": run.epoch, "epochs": run.total_epochs,
                      "batch": b, "batches": n, "loss": value, "lr": lr})
    return sum(losses) / len(losses)


def _validate(run: _Run) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the whole validation set."""
    run.model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.inference_mode():
        for b, (x, y) in enumerate(run.valid_dl, 1):
            run.check_stop(b)
            x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
            with autocast(run.device, run.precision):
                logits = run.model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(dim=1) == y).sum().item()
            count += len(y)
    return total_loss / count, correct / count


def _fit_one_cycle(run: _Run, phase: str, epochs: int, max_lrs: list[float]) -> dict[str, float]:
    """One 1cycle schedule over `epochs` epochs, one AdamW param group per layer group with its peak rate."""
    cfg = run.cfg
    groups = [[p for p in group.parameters() if p.requires_grad] for group in run.model.layer_groups()]
    opt = torch.optim.AdamW([{"params": params} for params in groups], lr=max(max_lrs), betas=(0.95, 0.99),
                            weight_decay=cfg.weight_decay, fused=True)
    sched = OneCycleLR(opt, max_lr=max_lrs, total_steps=epochs * len(run.train_dl), pct_start=cfg.pct_start,
                       cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)
    scaler = grad_scaler(run.device, run.precision)
    metrics: dict[str, float] = {}
    for _ in range(epochs):
        run.epoch += 1
        start = time.perf_counter()
        train_loss = _train_epoch(run, phase, opt, sched, scaler)
        valid_loss, accuracy = _validate(run)
        metrics = {"accuracy": accuracy, "valid_loss": valid_loss, "train_loss": train_loss}
        run.on_event({"type": "epoch", "phase": phase, "epoch": run.epoch, "epochs": run.total_epochs,
                      **metrics, "seconds": time.perf_counter() - start})
    return metrics


def _data_loaders(cfg: FineTuneConfig, data: ImageFolders, base: LoadedBase,
                  device: torch.device) -> tuple[DataLoader, DataLoader]:
    """Seeded shuffling; full training batches only, since the head's BatchNorm cannot train on one sample."""
    common: dict[str, Any] = {"num_workers": cfg.num_workers, "pin_memory": device.type == "cuda",
                              "persistent_workers": cfg.num_workers > 0}
    train = DataLoader(
        ImageFileDataset(data.train, train_transform(cfg.image_size, base.mean, base.std, cfg.flip)),
        batch_size=min(cfg.batch_size, len(data.train)), shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed), **common)
    valid = DataLoader(ImageFileDataset(data.valid, valid_transform(cfg.image_size, base.mean, base.std)),
                       batch_size=cfg.batch_size, **common)
    return train, valid


def _card(cfg: FineTuneConfig, data: ImageFolders, base: LoadedBase, precision: str,
          metrics: dict[str, float]) -> dict[str, Any]:
    """Everything needed to rebuild, serve and explain the model, as JSON."""
    return {
        "format_version": FORMAT_VERSION,
        "task": "image_classification",
        "arch": cfg.arch,
        "classes": data.classes,
        "n_classes": len(data.classes),
        "image_size": cfg.image_size,
        "normalization": {"mean": list(base.mean), "std": list(base.std)},
        "base": {**cfg.base.to_dict(), "description": base.description},
        "hyperparameters": cfg.to_dict(),
        "metrics": metrics,
        "dataset": {"train_images": len(data.train), "valid_images": len(data.valid),
                    "skipped_files": len(data.skipped)},
        "precision": precision,
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def fine_tune(cfg: FineTuneConfig, dataset_dir: str | Path, out_dir: str | Path,
              on_event: Callable[[Event], None] = lambda e: None,
              should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Fine-tune a ResNet classifier on an image-folders data set and write model.safetensors + card.json.

    Returns {"metrics": last epoch's {accuracy, valid_loss, train_loss}, "card": the written card}.
    Raises DatasetError, WeightsUnavailable, Cancelled (nothing written) or another EngineError.
    """
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    data = scan_image_folders(dataset_dir, cfg.valid_pct, cfg.seed)
    skipped = f", {len(data.skipped)} unreadable files skipped" if data.skipped else ""
    on_event(_log(f"data set {dataset_dir}: {len(data.classes)} classes, {len(data.train)} training and "
                  f"{len(data.valid)} validation images{skipped}"))
    on_event(_log(f"device {device}, precision {precision} (requested {cfg.precision})"))
    freeze_epochs = cfg.effective_freeze_epochs
    # A private RNG stream: the job is reproducible from cfg.seed and leaves the caller's RNG untouched.
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = ResNetClassifier(cfg.arch, len(data.classes))
        base = load_base_weights(cfg.base, cfg.arch, model.body)
        on_event(_log(f"base weights: {base.description}"))
        model.to(device)
        train_dl, valid_dl = _data_loaders(cfg, data, base, device)
        run = _Run(cfg, model, device, precision, train_dl, valid_dl, on_event, should_stop,
                   freeze_epochs + cfg.epochs)
        n_groups = len(model.layer_groups())
        metrics: dict[str, float] = {}
        if freeze_epochs:
            model.freeze_to(n_groups - 1)
            on_event(_log(f"phase frozen: {freeze_epochs} epoch(s) training the head and BatchNorm, "
                          f"peak lr {cfg.lr:g}"))
            metrics = _fit_one_cycle(run, "frozen", freeze_epochs, [cfg.lr] * n_groups)
        if cfg.epochs:
            model.freeze_to(0)
            lrs = even_mults(cfg.lr / 2 / cfg.lr_mult, cfg.lr / 2, n_groups)
            on_event(_log(f"phase unfrozen: {cfg.epochs} epoch(s), peak lr per layer group "
                          + ", ".join(f"{lr:.3g}" for lr in lrs)))
            metrics = _fit_one_cycle(run, "unfrozen", cfg.epochs, lrs)
    card = _card(cfg, data, base, precision, metrics)
    save_model(out_dir, model.state_dict(), card)
    on_event(_log(f"saved model to {out_dir}"))
    return {"metrics": metrics, "card": card}
