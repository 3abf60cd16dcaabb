"""What differs between the tasks that share the training recipe: how a data set is scanned, the model built
on the ResNet body, the datasets a stage's loaders read, extra validation metrics and the card's task fields.
fine_tune, find_lr and the loaders look the task up here by FineTuneConfig.task; the loop itself is shared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset

from .config import FineTuneConfig
from .image_folders import ImageFileDataset, scan_image_folders
from .image_transforms import train_transform, valid_transform
from .resnet_classifier import LayerGroupModel, ResNetClassifier
from .segmentation_data import MaskedImageDataset, input_hw, scan_image_masks
from .segmentation_metrics import ConfusionMatrix
from .unet import ResNetUNet


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


@dataclass(frozen=True)
class Task:
    name: str
    scan: Callable[[FineTuneConfig, Path], TaskData]
    new_model: Callable[[str, TaskData], LayerGroupModel]
    """(arch, data) -> the model with a randomly initialised body, before base weights are loaded."""
    dataset: Callable[[TaskData, list[Any], int, Any, FineTuneConfig, bool], Dataset]
    """(data, items, image_size, base, cfg, train) -> the items as model inputs; train adds augmentation."""
    new_metrics: Callable[[TaskData, torch.device], EpochMetrics | None]
    card_fields: Callable[[TaskData, int], dict[str, Any]]
    """(data, last stage's image size) -> what the card needs for serving beyond the shared fields."""


def _image_dataset(data: TaskData, items: list[Any], size: int, base: Any, cfg: FineTuneConfig, train: bool) -> Dataset:
    transform = (
        train_transform(size, base.mean, base.std, cfg.flip) if train else valid_transform(size, base.mean, base.std)
    )
    return ImageFileDataset(items, transform)


def _mask_dataset(data: Any, items: list[Any], size: int, base: Any, cfg: FineTuneConfig, train: bool) -> Dataset:
    return MaskedImageDataset(items, data, size, base.mean, base.std, flip=cfg.flip and train)


def _segmentation_card(data: Any, size: int) -> dict[str, Any]:
    void = data.void_index
    return {
        "image_size": size,
        "input_size": list(input_hw(data.image_hw, size)),
        "void_code": data.classes[void] if void is not None else None,
    }


TASKS: dict[str, Task] = {
    "image_classification": Task(
        "image_classification",
        scan=lambda cfg, root: scan_image_folders(root, cfg.valid_pct, cfg.seed),
        new_model=lambda arch, data: ResNetClassifier(arch, len(data.classes)),
        dataset=_image_dataset,
        new_metrics=lambda data, device: None,
        card_fields=lambda data, size: {"image_size": size},
    ),
    "segmentation": Task(
        "segmentation",
        scan=lambda cfg, root: scan_image_masks(root, cfg.valid_pct, cfg.seed, cfg.void_code),
        new_model=lambda arch, data: ResNetUNet(arch, len(data.classes)),
        dataset=_mask_dataset,
        new_metrics=lambda data, device: ConfusionMatrix(data.classes, data.void_index, device),
        card_fields=_segmentation_card,
    ),
}


def task_for(cfg: FineTuneConfig) -> Task:
    return TASKS[cfg.task]
