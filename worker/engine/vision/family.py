"""The image tasks' job (classification, multi-label, segmentation): fast.ai's transfer-learning recipe on a
ResNet body, as stages of head-only training, gradual unfreezing and progressive resizing. What differs between
the three tasks (scan, model, datasets, metrics, card) is in tasks.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader

from fineserve_common.configs import FineTuneConfig, Stage
from fineserve_common.events import Interpretation, Log
from fineserve_common.tasks import MULTI_LABEL, RESNET_GROUPS, SEGMENTATION
from fineserve_common.tasks import task as task_entry

from ..distributed import for_training
from ..early_stopping import EarlyStopping
from ..job import TaskJob, early_stopping_of
from ..precision import prefers_channels_last, resolve_device, resolve_precision
from ..schedule import stage_optimizer
from ..train_loop import Batches, LoopSettings, OnEvent, ShouldStop
from .augment import AugmentedBatches
from .base_weights import LoadedBase, load_base_weights, torchvision_weights
from .device_data import DeviceImages, fits
from .loaders import epoch_seed, reseed_for_epoch, train_loader, valid_loader
from .masks import input_hw
from .resnet import LayerGroupModel
from .served_metrics import served_pass
from .tasks import Task, task_for
from .transforms import presize


class TrainBatches:
    """A stage's training source (a DataLoader, or the images kept on the device) and the size its batches are
    augmented to; for_epoch gives the epoch's augmented batches, a function of (seed, epoch) alone."""

    def __init__(self, source: DataLoader | DeviceImages, hw: tuple[int, int], job: VisionJob) -> None:
        self.source, self.hw, self.job = source, hw, job

    def __len__(self) -> int:
        return len(self.source)

    def for_epoch(self, epoch: int) -> AugmentedBatches:
        job, seed = self.job, self.job.cfg.seed
        if isinstance(self.source, DataLoader):
            reseed_for_epoch(self.source, seed, epoch)
        else:
            self.source.set_epoch(epoch)
        base = job._loaded_base()
        return AugmentedBatches(self.source, job.augment, self.hw, base.mean, base.std, job.device,
                                epoch_seed(seed, epoch))


class VisionJob(TaskJob):
    def __init__(self, cfg: FineTuneConfig, dataset_dir: Path, on_event: OnEvent) -> None:
        """Everything that can fail on the request alone, checked before any model is built."""
        if cfg.base.kind == "torchvision":
            torchvision_weights(cfg.base, cfg.arch)
        self.device = resolve_device(cfg.device)
        cfg = replace(cfg, batch_size=cfg.batch_for(self.device.type))  # the card records the batch that ran
        self.cfg: FineTuneConfig = cfg
        self.task, self.auto_lr = cfg.task, cfg.auto_lr
        self.precision = resolve_precision(cfg.precision, self.device)
        self.recipe: Task = task_for(cfg)
        self.data = self.recipe.scan(cfg, dataset_dir)
        self.dataset_dir = dataset_dir
        self.fingerprint_of = self.data.classes
        self.settings = LoopSettings(self.device, self.precision, cfg.label_smoothing, cfg.mixup_alpha,
                                     cfg.grad_clip, channels_last=prefers_channels_last(self.device),
                                     multi_label=cfg.task == MULTI_LABEL)
        # Segmentation keeps the whole image (no random-resized crop); every other setting is the config's.
        self.augment = replace(cfg, min_scale=1.0) if cfg.task == SEGMENTATION else cfg
        self.base: LoadedBase | None = None
        data = self.data
        skipped = f", {len(data.skipped)} files skipped (unreadable or over the image limits)" if data.skipped else ""
        on_event(Log(f"data set {dataset_dir}: {len(data.classes)} {task_entry(cfg.task).label_noun}, "
                     f"{len(data.train)} training and {len(data.valid)} validation images{skipped}"))
        on_event(Log(f"device {self.device}, precision {self.precision} (requested {cfg.precision}), "
                     f"batch {cfg.batch_size}"))

    @classmethod
    def layer_groups(cls, cfg: Any) -> int | None:
        return RESNET_GROUPS

    def stages(self) -> tuple[Stage, ...]:
        return self.cfg.resolved_stages()

    def build(self, on_event: OnEvent) -> nn.Module:
        """The task's new head (or decoder) for the data set's classes on the requested body; raises
        WeightsUnavailable rather than training from random weights that were not asked for."""
        model = self.recipe.new_model(self.cfg.arch, self.data)
        self.base = load_base_weights(self.cfg.base, self.cfg.arch, model.body)
        on_event(Log(f"base weights: {self.base.description}"))
        model.to(self.device)
        if prefers_channels_last(self.device):
            model.to(memory_format=torch.channels_last)
        return model

    def _loaded_base(self) -> LoadedBase:
        assert self.base is not None, "build() loads the base before any loader is made"
        return self.base

    def start_stage(self, model: nn.Module, stage: Stage) -> tuple[nn.Module, torch.optim.Optimizer, list[float]]:
        assert isinstance(model, LayerGroupModel)
        model.freeze_to(stage.freeze_to)
        trained = for_training(model, self.device)
        groups = model.layer_groups()
        return (trained, *stage_optimizer(groups, self.cfg, stage))

    def stage_note(self, stage: Stage) -> str:
        return f", image size {stage.image_size}"

    def _train_hw(self, image_size: int) -> tuple[int, int]:
        if self.cfg.task == SEGMENTATION:
            return input_hw(self.data.image_hw, image_size)  # type: ignore[attr-defined]
        return image_size, image_size

    def _on_device(self, image_size: int) -> bool:
        """Whether the stage's images are decoded once onto the device and kept there: a CUDA job whose image
        squares (training and validation) fit in a share of the card's free memory; masks stay on the CPU."""
        n = len(self.data.train) + len(self.data.valid)
        return self.cfg.task != SEGMENTATION and fits(n, presize(image_size), self.device)

    def _train_source(self, image_size: int) -> DataLoader | DeviceImages:
        if self._on_device(image_size):
            return DeviceImages(self.data.train, presize(image_size), self.cfg.batch_size, self.device, train=True,
                                seed=self.cfg.seed)
        return train_loader(self.cfg, self.data, self._loaded_base(), self.device, image_size)

    def loaders(self, stage: Stage) -> tuple[TrainBatches, Any]:
        base, size = self._loaded_base(), stage.image_size
        train = TrainBatches(self._train_source(size), self._train_hw(size), self)
        if self._on_device(size):
            valid: Any = DeviceImages(self.data.valid, size, self.cfg.batch_size, self.device, train=False,
                                      mean=base.mean, std=base.std)
        else:
            valid = valid_loader(self.cfg, self.data, base, self.device, size)
        return train, valid

    def epoch_batches(self, train: Batches, epoch: int, model: nn.Module) -> Batches:
        assert isinstance(train, TrainBatches)
        return train.for_epoch(epoch)

    def epoch_metrics(self, model: nn.Module, valid: Any, should_stop: ShouldStop) -> dict[str, float]:
        return self.recipe.epoch_metrics(self.cfg, self.data, model, valid, self.settings, should_stop)

    def early_stopping(self) -> EarlyStopping:
        return early_stopping_of(self.cfg)

    def range_test_batches(self, model: nn.Module, stage: Stage) -> Batches:
        assert isinstance(model, LayerGroupModel)
        model.freeze_to(stage.freeze_to)
        size = stage.image_size
        return TrainBatches(self._train_source(size), self._train_hw(size), self).for_epoch(0)

    def served_pass(self, served: Any) -> tuple[dict[str, float], Interpretation | None]:
        """On the validation images at the last stage's size, as the served model preprocesses them."""
        return served_pass(self.cfg, self.data, self._loaded_base(), self.stages()[-1].image_size, self.settings,
                           served, self.dataset_dir)

    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        """Everything needed to rebuild, serve and explain the model beyond the common fields."""
        cfg, data, base, stages = self.cfg, self.data, self._loaded_base(), self.stages()
        last = stages[-1].image_size
        tuned = self.recipe.tuned_card
        extra = tuned(cfg, model, valid_loader(cfg, data, base, self.device, last), self.settings) if tuned else {}
        return {
            "arch": cfg.arch,
            "classes": data.classes,
            "n_classes": len(data.classes),
            **self.recipe.card_fields(data, last),
            "normalization": {"mean": list(base.mean), "std": list(base.std)},
            "base": {**cfg.base.to_dict(), "description": base.description},
            "stages": [stage.to_dict() for stage in stages],
            "metrics": {**metrics, **extra.pop("tuned_metrics", {})},
            "dataset": {"train_images": len(data.train), "valid_images": len(data.valid),
                        "skipped_files": len(data.skipped)},
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
            **extra,
        }
