"""What the runner (runner.py) asks of a task family: one TaskJob per job, opened on its data set. Everything
every task does alike (resume, auto-LR, the stage loop, checkpoints, the card's common fields, saving) is the
runner's; a family supplies only what differs, so adding a task is one folder and one registry line."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fineserve_common.configs import FineTuneConfig, JobConfig, Stage, TextConfig
from fineserve_common.events import Interpretation

from .early_stopping import EarlyStopping
from .train_loop import Batches, LoopSettings, OnEvent, ShouldStop


@contextmanager
def private_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for the job inside a fork: the job is reproducible from its seed and leaves the
    caller's RNG untouched."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def early_stopping_of(cfg: FineTuneConfig | TextConfig) -> EarlyStopping:
    return EarlyStopping(cfg.early_stopping_metric, cfg.early_stopping_patience, cfg.early_stopping_min_delta)


class TaskJob(ABC):
    """One task's job with its data open (the constructor scans it and logs what it found; it raises
    DatasetError and the like before any model exists). The runner builds the model under the job's private
    RNG, then asks for each stage's optimizer, loaders, batches and metrics, and for the card's task fields."""

    task: str
    cfg: JobConfig
    """With the learning rate actually used once auto_lr has chosen one (use_lr)."""
    device: torch.device
    precision: str
    settings: LoopSettings
    fingerprint_of: Any
    """What, beside the config, a checkpoint must match to be resumed: the classes (a language model's
    vocabulary, a table's schema)."""
    auto_lr: bool = False
    """Run the LR range test first and train at its valley suggestion."""
    saved: str = "model"
    """What the save message calls the model."""

    @abstractmethod
    def __init__(self, cfg: Any, dataset_dir: Path, on_event: OnEvent) -> None:
        """Open cfg's data set: scan and check it and log what it holds; nothing is built yet."""

    @classmethod
    def layer_groups(cls, cfg: Any) -> int | None:
        """How many layer groups cfg's model has; None where the task has no LR range test."""
        return None

    def use_lr(self, lr: float) -> None:
        self.cfg = dataclasses.replace(self.cfg, lr=lr)

    @abstractmethod
    def stages(self) -> tuple[Stage, ...]:
        """The schedule as it runs, each stage one 1cycle."""

    @abstractmethod
    def build(self, on_event: OnEvent) -> nn.Module:
        """The model with its base weights, on the job's device (called under the job's private RNG)."""

    @abstractmethod
    def start_stage(self, model: nn.Module, stage: Stage) -> tuple[nn.Module, torch.optim.Optimizer, list[float]]:
        """Freeze the model for stage; (the module to train, its optimizer, each param group's peak LR)."""

    @abstractmethod
    def loaders(self, stage: Stage) -> tuple[Batches, Any]:
        """(training batches, validation data) of a stage."""

    @abstractmethod
    def epoch_batches(self, train: Batches, epoch: int, model: nn.Module) -> Batches:
        """The training batches of an epoch, a function of (seed, epoch) alone, so a resumed job replays them."""

    @abstractmethod
    def epoch_metrics(self, model: nn.Module, valid: Any, should_stop: ShouldStop) -> dict[str, float]:
        """The validation metrics reported after every epoch (valid_loss at least)."""

    @abstractmethod
    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        """The card's task fields (they may override the common ones: a multi-label job's tuned metrics)."""

    def served_metrics(self, served: Any) -> dict[str, float]:
        """The validation metrics of `served` (the stored model as a replica loads it: served_eval.py), the
        epoch metrics' names measured at the serving precision with the served decisions; the card's and the
        result's headline metrics. Tasks whose models are served implement it or served_pass."""
        raise NotImplementedError(f"{self.task} models are not served")

    def served_pass(self, served: Any) -> tuple[dict[str, float], Interpretation | None]:
        """(served_metrics, interpretation) from one pass of `served` over the validation set, called on every
        rank; the interpretation (what the model gets right and wrong) is None where the task has none and on
        every rank but the main one."""
        return self.served_metrics(served), None

    def stage_note(self, stage: Stage) -> str:
        """Extra words for a stage's log line."""
        return ""

    def early_stopping(self) -> EarlyStopping:
        return EarlyStopping("", 1, 0.0)

    def range_test_batches(self, model: nn.Module, stage: Stage) -> Batches:
        """The training batches the LR range test reads, the model frozen for them (tasks with layer groups)."""
        raise NotImplementedError

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The state a checkpoint and the model file hold."""
        return model.state_dict()

    def load_model_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(state)

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors saved beside the weights in model.safetensors."""
        return {}

    def compute(self) -> AbstractContextManager[None]:
        """Held while the model is built and trained (the embedding tasks' one CPU thread)."""
        return nullcontext()
