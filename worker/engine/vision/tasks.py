"""What differs between the image tasks: how a data set is scanned, the model built on the ResNet body, the
datasets a stage's loaders read, the validation metrics and the card's task fields. The family's job
(family.py) and the loaders look the task up here by FineTuneConfig.task."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from fineserve_common.configs import FineTuneConfig
from fineserve_common.tasks import IMAGE_CLASSIFICATION, MULTI_LABEL, SEGMENTATION

from ..train_loop import Batch, LoopSettings, validate
from .folders import ImageFileDataset, scan_image_folders
from .labels_csv import scan_labels_csv
from .masks import MaskedImageDataset, input_hw, scan_image_masks
from .multi_label import accuracy_at, fbeta, multi_label_metrics, predict_valid, tune_thresholds
from .resnet import LayerGroupModel, ResNetClassifier
from .segmentation_metrics import ConfusionMatrix
from .transforms import train_transform, valid_transform
from .unet import ResNetUNet

ShouldStop = Callable[[], bool]


class TaskData(Protocol):
    """A scanned data set: class names, the items of each split, and files skipped as unreadable."""

    classes: list[str]
    train: list[Any]
    valid: list[Any]
    skipped: list[Path]


class EpochMetrics(Protocol):
    """Accumulates over a validation pass (update(logits, y) per batch), then reports named numbers."""

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None: ...

    def metrics(self) -> dict[str, float]: ...


EpochMetricsFn = Callable[[FineTuneConfig, TaskData, nn.Module, Iterable[Batch], LoopSettings, ShouldStop],
                          dict[str, float]]
TunedCardFn = Callable[[FineTuneConfig, nn.Module, Iterable[Batch], LoopSettings], dict[str, Any]]


def softmax_metrics(new_metrics: Callable[[TaskData, torch.device], EpochMetrics | None]) -> EpochMetricsFn:
    """valid_loss and accuracy of a softmax model (per image, or per non-void pixel), plus new_metrics' own."""
    def metrics(cfg: FineTuneConfig, data: TaskData, model: nn.Module, batches: Iterable[Batch],
                settings: LoopSettings, should_stop: ShouldStop) -> dict[str, float]:
        extra = new_metrics(data, settings.device)
        valid_loss, accuracy = validate(model, batches, settings, should_stop, extra.update if extra else None)
        return {"accuracy": accuracy, "valid_loss": valid_loss, **(extra.metrics() if extra else {})}
    return metrics


def _multi_label_metrics(cfg: FineTuneConfig, data: TaskData, model: nn.Module, batches: Iterable[Batch],
                         settings: LoopSettings, should_stop: ShouldStop) -> dict[str, float]:
    return multi_label_metrics(model, batches, settings, cfg.threshold, cfg.fbeta_beta, should_stop)


def _tuned_thresholds(cfg: FineTuneConfig, model: nn.Module, batches: Iterable[Batch],
                      settings: LoopSettings) -> dict[str, Any]:
    """Per-label thresholds tuned on the validation set for F-beta, with the metrics they reach (fbeta_tuned,
    accuracy_tuned, merged into the card's metrics); the served model applies them."""
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


@dataclass(frozen=True)
class Task:
    name: str
    scan: Callable[[FineTuneConfig, Path], TaskData]
    new_model: Callable[[str, TaskData], LayerGroupModel]
    """(arch, data) -> the model with a randomly initialised body, before base weights are loaded."""
    dataset: Callable[[TaskData, list[Any], int, Any, FineTuneConfig, bool], Dataset]
    """(data, items, image_size, base, cfg, train) -> the items as model inputs; training items come unnormalised,
    for the batch augmentation (augment.AugmentedBatches)."""
    epoch_metrics: EpochMetricsFn
    """The validation metrics reported after every epoch (valid_loss and accuracy at least)."""
    card_fields: Callable[[TaskData, int], dict[str, Any]]
    """(data, last stage's image size) -> what the card needs for serving beyond the shared fields."""
    tuned_card: TunedCardFn | None = field(default=None)
    """Card entries fitted on the validation set after training (multi-label thresholds)."""


def _image_dataset(data: TaskData, items: list[Any], size: int, base: Any, cfg: FineTuneConfig, train: bool) -> Dataset:
    transform = train_transform(size) if train else valid_transform(size, base.mean, base.std)
    return ImageFileDataset(items, transform)


def _mask_dataset(data: Any, items: list[Any], size: int, base: Any, cfg: FineTuneConfig, train: bool) -> Dataset:
    return MaskedImageDataset(items, data, size, base.mean, base.std, train)


def _segmentation_card(data: Any, size: int) -> dict[str, Any]:
    void = data.void_index
    return {
        "image_size": size,
        "input_size": list(input_hw(data.image_hw, size)),
        "void_code": data.classes[void] if void is not None else None,
    }


TASKS: dict[str, Task] = {
    IMAGE_CLASSIFICATION: Task(
        IMAGE_CLASSIFICATION,
        scan=lambda cfg, root: scan_image_folders(root, cfg.valid_pct, cfg.seed),
        new_model=lambda arch, data: ResNetClassifier(arch, len(data.classes)),
        dataset=_image_dataset,
        epoch_metrics=softmax_metrics(lambda data, device: None),
        card_fields=lambda data, size: {"image_size": size},
    ),
    MULTI_LABEL: Task(
        MULTI_LABEL,
        scan=lambda cfg, root: scan_labels_csv(root, cfg.valid_pct, cfg.seed),
        new_model=lambda arch, data: ResNetClassifier(arch, len(data.classes)),
        dataset=_image_dataset,
        epoch_metrics=_multi_label_metrics,
        card_fields=lambda data, size: {"image_size": size},
        tuned_card=_tuned_thresholds,
    ),
    SEGMENTATION: Task(
        SEGMENTATION,
        scan=lambda cfg, root: scan_image_masks(root, cfg.valid_pct, cfg.seed, cfg.void_code),
        new_model=lambda arch, data: ResNetUNet(arch, len(data.classes)),
        dataset=_mask_dataset,
        epoch_metrics=softmax_metrics(lambda data, device: ConfusionMatrix(data.classes, data.void_index, device)),
        card_fields=_segmentation_card,
    ),
}


def task_for(cfg: FineTuneConfig) -> Task:
    return TASKS[cfg.task]
