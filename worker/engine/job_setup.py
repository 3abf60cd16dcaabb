"""What fine_tune and find_lr both do before training: pick device and precision, scan the data, and build
the model with its base weights inside a private, seeded RNG stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .base_weights import LoadedBase, load_base_weights
from .config import MULTI_LABEL, FineTuneConfig
from .precision import prefers_channels_last, resolve_device, resolve_precision
from .resnet_classifier import LayerGroupModel
from .tasks import TaskData, task_for

Event = dict[str, Any]


def log_event(message: str) -> Event:
    return {"type": "log", "message": message}


@dataclass(frozen=True)
class Job:
    """The resolved environment of one job."""

    device: torch.device
    precision: str
    data: TaskData


def open_job(cfg: FineTuneConfig, dataset_dir: str | Path, on_event: Callable[[Event], None]) -> Job:
    """Everything that can fail on the request alone, checked before any model is built."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    data = task_for(cfg).scan(cfg, Path(dataset_dir))
    skipped = f", {len(data.skipped)} unreadable files skipped" if data.skipped else ""
    on_event(log_event(f"data set {dataset_dir}: {len(data.classes)} {_noun(cfg)}, {len(data.train)} training and "
                       f"{len(data.valid)} validation images{skipped}"))
    on_event(log_event(f"device {device}, precision {precision} (requested {cfg.precision})"))
    return Job(device, precision, data)


def _noun(cfg: FineTuneConfig) -> str:
    return "labels" if cfg.task == MULTI_LABEL else "classes"


@contextmanager
def private_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for the job inside a fork: the job is reproducible from its seed and leaves the
    caller's RNG untouched."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def build_model(cfg: FineTuneConfig, job: Job,
                on_event: Callable[[Event], None]) -> tuple[LayerGroupModel, LoadedBase]:
    """The task's new head (or decoder) for the data set's classes on the requested body; raises
    WeightsUnavailable rather than training from random weights that were not asked for."""
    model = task_for(cfg).new_model(cfg.arch, job.data)
    base = load_base_weights(cfg.base, cfg.arch, model.body)
    on_event(log_event(f"base weights: {base.description}"))
    model.to(job.device)
    if prefers_channels_last(job.device):
        model.to(memory_format=torch.channels_last)
    return model, base
