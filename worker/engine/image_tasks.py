"""What differs between the image tasks that share the training recipe: the data layout they read, the
metrics each epoch reports and what the model card adds. Model, loop, stages and schedule are common."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn

from .config import MULTI_LABEL, FineTuneConfig
from .image_folders import ImageFolders, scan_image_folders
from .image_labels_csv import scan_labels_csv
from .multi_label import accuracy_at, fbeta, multi_label_metrics, predict_valid, tune_thresholds
from .train_loop import Batch, LoopSettings, never_stop, validate


def scan_dataset(cfg: FineTuneConfig, root: str | Path) -> ImageFolders:
    """Multi-label jobs read a labels CSV; single-label ones read class folders."""
    scan = scan_labels_csv if cfg.task == MULTI_LABEL else scan_image_folders
    return scan(root, cfg.valid_pct, cfg.seed)


def epoch_metrics(
    cfg: FineTuneConfig,
    model: nn.Module,
    batches: Iterable[Batch],
    settings: LoopSettings,
    should_stop: Callable[[], bool] = never_stop,
) -> dict[str, float]:
    """valid_loss and accuracy for every task; multi-label adds fbeta (both at cfg.threshold)."""
    if cfg.task == MULTI_LABEL:
        return multi_label_metrics(model, batches, settings, cfg.threshold, cfg.fbeta_beta, should_stop)
    valid_loss, accuracy = validate(model, batches, settings, should_stop)
    return {"valid_loss": valid_loss, "accuracy": accuracy}


def final_card_entries(
    cfg: FineTuneConfig, model: nn.Module, batches: Iterable[Batch], settings: LoopSettings
) -> dict[str, Any]:
    """Multi-label: per-label thresholds tuned on the validation set for F-beta, with the metrics they reach
    (fbeta_tuned, accuracy_tuned); the served model applies them. Nothing for single-label models."""
    if cfg.task != MULTI_LABEL:
        return {}
    _, probs, targets = predict_valid(model, batches, settings)
    thresholds = tune_thresholds(probs, targets, cfg.fbeta_beta)
    return {
        "thresholds": [round(float(t), 4) for t in thresholds],
        "fbeta_beta": cfg.fbeta_beta,
        "tuned_metrics": {
            "fbeta_tuned": fbeta(probs, targets, thresholds, cfg.fbeta_beta),
            "accuracy_tuned": accuracy_at(probs, targets, thresholds),
        },
    }
