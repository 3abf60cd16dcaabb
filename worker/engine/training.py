"""fast.ai's transfer-learning recipe (image classification, segmentation): a schedule of 1cycle stages (head
only, gradual unfreezing, progressive resizing) with discriminative learning rates, and a checkpoint after every
epoch that a rerun on the same out_dir resumes from."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision

from .base_weights import LoadedBase
from .checkpoint import (
    TrainingState,
    job_fingerprint,
    load_checkpoint,
    remove_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from .config import FineTuneConfig, Stage
from .distributed import for_training, is_main, per_rank_batch, world_size
from .early_stopping import EarlyStopping
from .image_loaders import reseed_for_epoch, train_loader, valid_loader
from .job_setup import Event, Job, build_model, log_event, open_job, private_rng
from .lr_finder import AUTO_LR_RANGE, job_range_test
from .model_card import FORMAT_VERSION, save_model
from .precision import grad_scaler
from .resnet_classifier import LayerGroupModel
from .schedule import group_max_lrs, make_optimizer, one_cycle
from .tasks import task_for
from .train_loop import LoopSettings, ignore_event, never_stop, train_epoch


@dataclass
class _Training:
    """One job's progress through its stages; what a checkpoint saves and a resume restores."""

    cfg: FineTuneConfig
    """With the learning rate actually used (auto_lr's choice)."""
    job: Job
    model: LayerGroupModel
    base: LoadedBase
    out_dir: Path
    fingerprint: str
    lr_finder: dict[str, Any] | None
    on_event: Callable[[Event], None]
    should_stop: Callable[[], bool]
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0
    stages: tuple[Stage, ...] = field(init=False)
    settings: LoopSettings = field(init=False)
    early: EarlyStopping = field(init=False)

    def __post_init__(self) -> None:
        self.stages = self.cfg.resolved_stages()
        self.settings = LoopSettings.for_job(self.cfg, self.job.device, self.job.precision)
        self.early = EarlyStopping(self.cfg.early_stopping_metric, self.cfg.early_stopping_patience,
                                   self.cfg.early_stopping_min_delta)

    @property
    def total_epochs(self) -> int:
        return sum(stage.epochs for stage in self.stages)

    def run(self, resume: TrainingState | None) -> None:
        if resume:
            self.model.load_state_dict(resume.model)
            self.epoch, self.history = resume.epoch, resume.history
            self.early.load_state_dict(resume.early_stopping)
            restore_rng(resume.rng, self.job.device)
            self.on_event(log_event(f"resumed from checkpoint after epoch {resume.epoch}"))
        first = 0
        for i, stage in enumerate(self.stages):
            if self.early.stopped:
                break
            if self.epoch < first + stage.epochs:
                self._run_stage(i, stage, first, resume if resume and resume.stage == i else None)
            first += stage.epochs

    def _run_stage(self, index: int, stage: Stage, first_epoch: int, resume: TrainingState | None) -> None:
        cfg, job, model = self.cfg, self.job, self.model
        model.freeze_to(stage.freeze_to)
        trained = for_training(model, job.device)
        groups = model.layer_groups()
        max_lrs = group_max_lrs(cfg, stage, len(groups))
        self.on_event(log_event(
            f"stage {index}: {stage.epochs} epoch(s), groups before {stage.freeze_to} frozen, image size "
            f"{stage.image_size}, peak lr per layer group " + ", ".join(f"{lr:.3g}" for lr in max_lrs)))
        train_dl = train_loader(cfg, job.data, self.base, job.device, stage.image_size)
        valid_dl = valid_loader(cfg, job.data, self.base, job.device, stage.image_size)
        opt = make_optimizer(groups, cfg)
        sched = one_cycle(opt, cfg, max_lrs, stage.epochs * len(train_dl))
        scaler = grad_scaler(job.device, job.precision)
        if resume:
            opt.load_state_dict(resume.optimizer)
            sched.load_state_dict(resume.scheduler)
            scaler.load_state_dict(resume.scaler)
        phase = f"stage-{index}"
        while self.epoch < first_epoch + stage.epochs and not self.early.stopped:
            self.epoch += 1
            start = time.perf_counter()
            train_loss = train_epoch(trained, reseed_for_epoch(train_dl, cfg.seed, self.epoch), opt, sched, scaler,
                                     self.settings, phase=phase, epoch=self.epoch, epochs=self.total_epochs,
                                     on_event=self.on_event, should_stop=self.should_stop)
            metrics = {**task_for(cfg).epoch_metrics(cfg, job.data, model, valid_dl, self.settings,
                                                     self.should_stop), "train_loss": train_loss}
            self.history.append(metrics)
            self.on_event({"type": "epoch", "phase": phase, "epoch": self.epoch, "epochs": self.total_epochs,
                           **metrics, "seconds": time.perf_counter() - start})
            if self.early.update(metrics):
                self.on_event(log_event(
                    f"early stopping after epoch {self.epoch}: {cfg.early_stopping_metric} has not improved by "
                    f"more than {cfg.early_stopping_min_delta:g} for {cfg.early_stopping_patience} epoch(s)"))
            state = TrainingState(index, self.epoch, model.state_dict(), opt.state_dict(), sched.state_dict(),
                                  scaler.state_dict(), self.early.state_dict(), self.history,
                                  rng_state(job.device), self.lr_finder)
            if is_main():
                path = save_checkpoint(self.out_dir, state, self.fingerprint)
                self.on_event({"type": "checkpoint", "epoch": self.epoch, "path": str(path)})

    def card(self) -> dict[str, Any]:
        """Everything needed to rebuild, serve and explain the model, as JSON."""
        cfg, data, task = self.cfg, self.job.data, task_for(self.cfg)
        last = self.stages[-1].image_size
        extra = task.tuned_card(cfg, self.model, valid_loader(cfg, data, self.base, self.job.device, last),
                                self.settings) if task.tuned_card else {}
        return {
            "format_version": FORMAT_VERSION,
            "task": cfg.task,
            "arch": cfg.arch,
            "classes": data.classes,
            "n_classes": len(data.classes),
            **task.card_fields(data, last),
            "normalization": {"mean": list(self.base.mean), "std": list(self.base.std)},
            "base": {**cfg.base.to_dict(), "description": self.base.description},
            "hyperparameters": cfg.to_dict(),
            "stages": [stage.to_dict() for stage in self.stages],
            "epochs_trained": self.epoch,
            "metrics": {**self.history[-1], **extra.pop("tuned_metrics", {})},
            "dataset": {"train_images": len(data.train), "valid_images": len(data.valid),
                        "skipped_files": len(data.skipped)},
            "precision": self.job.precision,
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **extra,
        }


def fine_tune(cfg: FineTuneConfig, dataset_dir: str | Path, out_dir: str | Path,
              on_event: Callable[[Event], None] = ignore_event,
              should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """Fine-tune cfg.task's model (a ResNet classifier on image folders, or with sigmoid outputs on a labels CSV;
    a U-Net on image masks) and write model.safetensors + card.json.

    Each stage of cfg.resolved_stages() is one 1cycle. After every epoch a checkpoint goes to
    out_dir/checkpoint/; when out_dir already holds one made for the same cfg and classes, training resumes
    after its epoch (a foreign or unreadable one is ignored, with a log event). On success the checkpoint is
    removed, so out_dir holds only the model.

    Events: {"type": "log", message}, batch events (see train_epoch; phase "stage-<i>", or "lr_find" for
    auto_lr's range test), {"type": "epoch", phase, epoch, epochs, accuracy, valid_loss, train_loss, seconds}
    (segmentation adds mean_iou, dice and iou:<class>, its accuracy per non-void pixel; multi-label adds fbeta,
    with accuracy per (image, label) decision at cfg.threshold),
    {"type": "checkpoint", epoch, path}; epochs are numbered from 1 over the whole job.
    Returns {"metrics": the last epoch's {accuracy, valid_loss, train_loss}, "card": the written card,
    "epochs_trained": int} plus, with auto_lr, {"lr_finder": find_lr's result, "chosen_lr": its valley}.
    Raises DatasetError, WeightsUnavailable, Cancelled (out_dir then holds at most the last epoch's checkpoint)
    or another EngineError.

    Called on every rank of a torch.distributed process group, it trains data-parallel (see distributed.py for
    the batch-size and learning-rate semantics); only rank 0 reports events and writes the checkpoints and the
    model, so out_dir must be a directory every rank can read (to resume) and rank 0 can write.
    """
    out = Path(out_dir)
    if not is_main():
        on_event = ignore_event
    if world_size() > 1:
        if cfg.auto_lr:
            raise ValueError("auto_lr runs the LR range test on one worker: run FindLearningRate first and set lr")
        on_event(log_event(f"data-parallel training on {world_size()} workers: global batch {cfg.batch_size}, "
                           f"{per_rank_batch(cfg.batch_size)} per worker per step; lr not scaled"))
    job = open_job(cfg, dataset_dir, on_event)
    fingerprint = job_fingerprint(cfg, job.data.classes)
    resume = load_checkpoint(out, fingerprint, lambda message: on_event(log_event(message)))
    with private_rng(cfg.seed, job.device):
        model, base = build_model(cfg, job, on_event)
        lr_finder = resume.lr_finder if resume else None
        if cfg.auto_lr and not resume:
            lr_finder = job_range_test(cfg, job, model, base, **AUTO_LR_RANGE, on_event=on_event,
                                       should_stop=should_stop)
        run_cfg = cfg
        if lr_finder:
            run_cfg = dataclasses.replace(cfg, lr=lr_finder["suggestions"]["valley"])
            on_event(log_event(f"auto_lr: lr {run_cfg.lr:.3g}, the range test's valley suggestion"))
        training = _Training(run_cfg, job, model, base, out, fingerprint, lr_finder, on_event, should_stop)
        training.run(resume)
    card = training.card()
    if is_main():
        save_model(out, model.state_dict(), card)
        remove_checkpoint(out)
        on_event(log_event(f"saved model to {out}"))
    result = {"metrics": card["metrics"], "card": card, "epochs_trained": training.epoch}
    if lr_finder:
        result |= {"lr_finder": lr_finder, "chosen_lr": run_cfg.lr}
    return result
