"""The one job lifecycle every task runs (fastai's Learner as the model): device and precision, the data, the
checkpoint to resume, a private RNG, the model and its base weights, auto-LR, the stages (each a 1cycle of
discriminative AdamW at one freeze depth, with per-epoch metrics, early stopping and a checkpoint), the card and
the model file. What differs per task comes from its family's TaskJob (job.py), found in families.py."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fineserve_common.card import FORMAT_VERSION
from fineserve_common.configs import FineTuneConfig, JobConfig, TextConfig
from fineserve_common.events import Checkpoint, Epoch, JobResult, Log, LrFinderResult

from .checkpoint import (
    TrainingState,
    job_fingerprint,
    load_checkpoint,
    remove_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from .distributed import is_main, per_rank_batch, world_size
from .early_stopping import BestEpoch
from .families import job_type, open_job
from .job import TaskJob, private_rng
from .lr_finder import (
    AUTO_LR_RANGE,
    auto_lr_batches,
    auto_lr_pick,
    check_freeze_to,
    check_range,
    lr_range_test,
    suggestions_event,
)
from .model_card import save_model
from .precision import grad_scaler
from .schedule import one_cycle
from .served_eval import served_card
from .train_loop import OnEvent, ShouldStop, ignore_event, never_stop, train_epoch


class _Stages:
    """A job's progress through its stages: what a checkpoint saves and a resume restores."""

    def __init__(self, job: TaskJob, model: nn.Module, out_dir: Path, fingerprint: str,
                 lr_finder: LrFinderResult | None, on_event: OnEvent, should_stop: ShouldStop) -> None:
        self.job, self.model, self.out_dir, self.fingerprint = job, model, out_dir, fingerprint
        self.lr_finder, self.on_event, self.should_stop = lr_finder, on_event, should_stop
        self.stages = job.stages()
        self.total_epochs = sum(stage.epochs for stage in self.stages)
        self.early = job.early_stopping()
        self.kept = BestEpoch(job.cfg.keep, self.early.metric)
        self.history: list[dict[str, float]] = []
        self.epoch = 0

    def run(self, resume: TrainingState | None) -> None:
        """Each stage not finished yet; the batches of an epoch depend only on (seed, epoch), so a resumed job
        reaches the uninterrupted one's weights."""
        if resume:
            self.job.load_model_state(self.model, resume.model)
            self.epoch, self.history = resume.epoch, resume.history
            self.early.load_state_dict(resume.early_stopping)
            self.kept.load_state_dict(resume.best, resume.best_model, lambda: self.job.model_state(self.model))
            restore_rng(resume.rng, self.job.device)
            self.on_event(Log(f"resumed from checkpoint after epoch {resume.epoch}"))
        first = 0
        for index in range(len(self.stages)):
            if self.early.stopped:
                break
            if self.epoch < first + self.stages[index].epochs:
                self._run_stage(index, first, resume if resume and resume.stage == index else None)
            first += self.stages[index].epochs

    def _run_stage(self, index: int, first_epoch: int, resume: TrainingState | None) -> None:
        job, model, stage = self.job, self.model, self.stages[index]
        trained, opt, max_lrs = job.start_stage(model, stage)
        self.on_event(Log(
            f"stage {index}: {stage.epochs} epoch(s), groups before {stage.freeze_to} frozen{job.stage_note(stage)}, "
            "peak lr per layer group " + ", ".join(f"{lr:.3g}" for lr in max_lrs)))
        train, valid = job.loaders(stage)
        sched = one_cycle(opt, job.cfg, max_lrs, stage.epochs * len(train))
        scaler = grad_scaler(job.device, job.precision)
        if resume:
            opt.load_state_dict(resume.optimizer)
            sched.load_state_dict(resume.scheduler)
            scaler.load_state_dict(resume.scaler)
        phase = f"stage-{index}"
        while self.epoch < first_epoch + stage.epochs and not self.early.stopped:
            self.epoch += 1
            start = time.perf_counter()
            train_loss = train_epoch(trained, job.epoch_batches(train, self.epoch, model), opt, sched, scaler,
                                     job.settings, phase=phase, epoch=self.epoch, epochs=self.total_epochs,
                                     on_event=self.on_event, should_stop=self.should_stop)
            metrics = {**job.epoch_metrics(model, valid, self.should_stop), "train_loss": train_loss}
            self.history.append(metrics)
            self.kept.update(self.epoch, metrics, lambda: job.model_state(model))
            self.on_event(Epoch(phase, self.epoch, self.total_epochs, metrics, time.perf_counter() - start))
            if self.early.update(metrics):
                self.on_event(Log(
                    f"early stopping after epoch {self.epoch}: {self.early.metric} has not improved by more than "
                    f"{self.early.min_delta:g} for {self.early.patience} epoch(s)"))
            state = TrainingState(index, self.epoch, job.model_state(model), opt.state_dict(), sched.state_dict(),
                                  scaler.state_dict(), self.early.state_dict(), self.history,
                                  rng_state(job.device), self.lr_finder, self.kept.state_dict(),
                                  self.kept.weights if self.kept.epoch != self.epoch else None)
            if is_main():
                path = save_checkpoint(self.out_dir, state, self.fingerprint)
                self.on_event(Checkpoint(self.epoch, str(path)))

    def restore_kept(self) -> None:
        """Put the kept epoch's weights back into the model (keep "best" and a later epoch was worse)."""
        if self.kept.weights is not None and self.kept.epoch != self.epoch:
            self.job.load_model_state(self.model, self.kept.weights)
            self.on_event(Log(f"keeping epoch {self.kept.epoch}'s weights, the best by {self.kept.metric} "
                              f"({self.kept.value:.4g}); the last epoch, {self.epoch}, reached "
                              f"{self.history[-1][self.kept.metric]:.4g}"))

    def card(self) -> dict[str, Any]:
        """The fields every card has, then the task's own; the metrics are the kept epoch's."""
        job, metrics = self.job, self.history[self.kept.epoch - 1]
        return {
            "format_version": FORMAT_VERSION,
            "task": job.task,
            "hyperparameters": job.cfg.to_dict(),
            "epochs_trained": self.epoch,
            "metrics": metrics,
            "kept": self.kept.card(),
            "precision": job.precision,
            "versions": {"torch": torch.__version__},
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **job.card_fields(self.model, metrics),
        }


def _range_test(job: TaskJob, model: nn.Module, *, start_lr: float, end_lr: float, num_batches: int,
                freeze_to: int | None, on_event: OnEvent, should_stop: ShouldStop,
                within_epoch: bool = False) -> LrFinderResult:
    """The range test as the job would train: the first stage's batches and freeze depth (unless freeze_to is
    given), the job's optimizer settings, regularisers and precision. within_epoch (auto_lr): num_batches is
    the most, an epoch's batches the aim (auto_lr_batches). Leaves the model as it found it."""
    first = job.stages()[0]
    depth = first.freeze_to if freeze_to is None else freeze_to
    stage = dataclasses.replace(first, freeze_to=depth)
    batches = job.range_test_batches(model, stage)
    if within_epoch:
        num_batches = auto_lr_batches(len(batches), num_batches)  # type: ignore[arg-type]
    on_event(Log(f"LR range test: lr {start_lr:g} to {end_lr:g} over up to {num_batches} batches, "
                 f"freeze_to {depth}{job.stage_note(stage)}"))
    result = lr_range_test(model, batches, lambda: job.start_stage(model, stage)[1], settings=job.settings,
                           start_lr=start_lr, end_lr=end_lr, num_batches=num_batches, on_event=on_event,
                           should_stop=should_stop)
    on_event(suggestions_event(result))
    return result


def fine_tune(cfg: JobConfig, dataset_dir: str | Path, out_dir: str | Path, on_event: OnEvent = ignore_event,
              should_stop: ShouldStop = never_stop) -> JobResult:
    """Train the model of cfg's task on a data set and write model.safetensors + card.json to out_dir.

    After every epoch a checkpoint goes to out_dir/checkpoint/; when out_dir already holds one made for the same
    config and classes, training resumes after its epoch (a foreign or unreadable one is ignored, with a log
    event). On success the checkpoint is removed, so out_dir holds only the model.

    Events (fineserve_common.events): Log, Batch (see train_epoch; phase "stage-<i>", or "lr_find" for auto_lr's
    range test), Epoch (metrics: valid_loss, train_loss and the task's own) and Checkpoint; epochs are numbered
    from 1 over the whole job. Returns the stored model's metrics measured as served (served_eval.py), the
    written card and the epochs trained, plus with auto_lr the range test's result and the suggestion it
    trained at (auto_lr_pick) as chosen_lr. Raises InvalidArgument, DatasetError,
    WeightsUnavailable, Cancelled (out_dir then holds at most the last epoch's checkpoint) or another EngineError.

    Called on every rank of a torch.distributed process group, it trains data-parallel (see distributed.py for
    the batch-size and learning-rate semantics); only rank 0 reports events and writes the checkpoints and the
    model, so out_dir must be a directory every rank can read (to resume) and rank 0 can write.
    """
    out = Path(out_dir)
    if not is_main():
        on_event = ignore_event
    if world_size() > 1 and isinstance(cfg, FineTuneConfig | TextConfig) and cfg.auto_lr:
        raise ValueError("auto_lr runs the LR range test on one worker: run FindLearningRate first and set lr")
    job = open_job(cfg, Path(dataset_dir), on_event)
    if world_size() > 1:
        on_event(Log(f"data-parallel training on {world_size()} workers: global batch {job.cfg.batch_size}, "
                     f"{per_rank_batch(job.cfg.batch_size)} per worker per step; lr not scaled"))
    if isinstance(cfg, FineTuneConfig) and cfg.applied_defaults():
        on_event(Log(cfg.applied_defaults()))
    fingerprint = job_fingerprint(cfg, job.fingerprint_of)
    resume = load_checkpoint(out, fingerprint, lambda message: on_event(Log(message)))
    with private_rng(cfg.seed, job.device), job.compute():
        model = job.build(on_event)
        lr_finder = None
        if job.auto_lr:
            lr_finder = resume.lr_finder if resume else _range_test(
                job, model, **AUTO_LR_RANGE, on_event=on_event, should_stop=should_stop, within_epoch=True)
            pick = auto_lr_pick(isinstance(cfg, FineTuneConfig) and cfg.base.kind == "none")
            job.use_lr(lr_finder.suggestions[pick])
            on_event(Log(f"auto_lr: lr {job.cfg.lr:.3g}, the range test's {pick} suggestion"
                         + (" (a random body takes higher rates than the valley)" if pick != "valley" else "")))
        run = _Stages(job, model, out, fingerprint, lr_finder, on_event, should_stop)
        run.run(resume)
        run.restore_kept()
    card = run.card()
    if is_main():
        save_model(out, {**job.model_state(model), **job.extra_tensors()}, card)
        remove_checkpoint(out)
        on_event(Log(f"saved {job.saved} to {out}"))
    # The headline metrics and the interpretation: the stored model's, loaded once and measured as served.
    card, interpretation = served_card(job, out, card)
    return JobResult(card["metrics"], card, run.epoch, lr_finder, job.cfg.lr if lr_finder else None,
                     interpretation=interpretation)


def find_lr(cfg: JobConfig, dataset_dir: str | Path, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_batches: int = 100, freeze_to: int | None = None, on_event: OnEvent = ignore_event,
            should_stop: ShouldStop = never_stop) -> LrFinderResult:
    """The LR range test (lr_range_test) on the model and training batches fine_tune of cfg would start from:
    same data, base weights and seed, the first stage's freeze depth unless freeze_to is given, the job's
    optimizer settings and precision. Returns the curve and its suggestions; writes nothing. Raises ValueError (a bad
    range, or a task without range tests), DatasetError, WeightsUnavailable, Cancelled or another EngineError."""
    check_range(start_lr, end_lr, num_batches)
    n_groups = job_type(cfg).layer_groups(cfg)
    if n_groups is None:
        raise ValueError(f"the LR range test is not available for {cfg.task}")
    if freeze_to is not None:
        check_freeze_to(freeze_to, n_groups)
    job = open_job(cfg, Path(dataset_dir), on_event)
    with private_rng(cfg.seed, job.device), job.compute():
        return _range_test(job, job.build(on_event), start_lr=start_lr, end_lr=end_lr, num_batches=num_batches,
                           freeze_to=freeze_to, on_event=on_event, should_stop=should_stop)
