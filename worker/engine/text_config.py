"""Configuration of the ULMFiT jobs (language model, text classifier): JSON round-trippable, validated up front.

It carries the same recipe fields as FineTuneConfig (1cycle, moms, weight decay), so schedule.py's optimizer
and 1cycle serve both; the per-group rate spread is ULMFiT's each-group-/2.6-of-the-next."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import (
    _DEVICE,
    EARLY_STOPPING_METRICS,
    PRECISIONS,
    BaseWeights,
    Stage,
    _check_choice,
    _check_float,
    _check_int,
    _fail,
    recipe_fields,
)

TEXT_TASKS = ("language_model", "text_classification")
TEXT_BASE_KINDS = ("none", "file", "store")


@dataclass(frozen=True)
class TextConfig:
    """ULMFiT's defaults (Howard & Ruder 2018), scaled by drop_mult; sizes are the published AWD-LSTM's."""

    task: str = "language_model"
    """"language_model" (stages 1-2) or "text_classification" (stage 3)."""
    base: BaseWeights = dataclasses.field(default_factory=lambda: BaseWeights("none"))
    """"none"; "store": a fineserve language model directory (the classifier's encoder must come from one);
    "file": (language model only) weights in fast.ai's WT103 layout as .safetensors, with its vocabulary as a
    JSON list in <same stem>.vocab.json. With a base, the model's sizes come from the base."""
    emb_size: int = 400
    hidden_size: int = 1152
    n_layers: int = 3
    max_vocab: int = 60000
    min_freq: int = 2
    bptt: int = 70
    """Mean tokens per language-model batch (AWD-LSTM varies it per batch)."""
    max_len: int = 1400
    """The classifier reads at most this many tokens of a text (its last ones)."""
    batch_size: int = 64
    drop_mult: float = 0.5
    """Scales every dropout of the model (ULMFiT: 0.3 for the IMDB language model, 0.5 for its classifier)."""
    freeze_epochs: int = 1
    """Epochs of the first stage, only the last layer group trainable; skipped when base.kind is "none" (so is
    the classifier's gradual unfreezing). Unused with stages."""
    epochs: int = 3
    """Epochs of the last stage, everything trainable. Unused with stages."""
    lr: float = 1e-2
    """Head group's peak rate of the first stage; each later default stage halves it."""
    auto_lr: bool = False
    """Run the LR range test first (on the job's model and batches, see text_training.find_text_lr) and use its
    valley suggestion as lr."""
    group_lr_ratio: float = 2.6
    """Each layer group's peak rate is the next one's divided by this (discriminative fine-tuning)."""
    stages: tuple[Stage, ...] = ()
    """() = the default schedule: language model freeze_epochs head-only then epochs unfrozen; classifier
    gradual unfreezing, one more group per epoch-long stage, then epochs unfrozen."""
    weight_decay: float = 0.01
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e5
    moms_max: float = 0.8
    moms_min: float = 0.7
    grad_clip: float = 0.25
    early_stopping_metric: str = ""
    """"" (never stop), "valid_loss" or "accuracy" (a language model's: next-token accuracy); as FineTuneConfig."""
    early_stopping_patience: int = 3
    early_stopping_min_delta: float = 0.0
    precision: str = "auto"
    valid_pct: float = 0.1
    """Language model: the share of all texts held out for perplexity. Classifier: the share held out when the
    CSV has no is_valid column."""
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        self.validate()

    def validate(self) -> None:
        _check_choice("task", self.task, TEXT_TASKS)
        if not isinstance(self.base, BaseWeights):
            _fail("base", "must be a BaseWeights", self.base)
        _check_choice("base.kind", self.base.kind, TEXT_BASE_KINDS)
        if self.task == "text_classification" and self.base.kind == "file":
            _fail("base.kind", "a classifier's encoder comes from a stored language model ('store') or 'none'",
                  self.base.kind)
        _check_int("emb_size", self.emb_size, 2, 4096)
        _check_int("hidden_size", self.hidden_size, 2, 8192)
        _check_int("n_layers", self.n_layers, 1, 8)
        _check_int("max_vocab", self.max_vocab, 16, 1_000_000)
        _check_int("min_freq", self.min_freq, 1, 1_000_000)
        _check_int("bptt", self.bptt, 8, 10_000)
        _check_int("max_len", self.max_len, 8, 100_000)
        _check_int("batch_size", self.batch_size, 2, 4096)
        _check_float("drop_mult", self.drop_mult, 0.0, 2.0)
        _check_int("freeze_epochs", self.freeze_epochs, 0, 1000)
        _check_int("epochs", self.epochs, 0, 1000)
        if not self.stages and self.freeze_epochs + self.epochs < 1:
            _fail("epochs", "freeze_epochs + epochs must be >= 1", self.epochs)
        if not self.stages and self.base.kind == "none" and self.epochs < 1:
            _fail("epochs", "must be >= 1 when base.kind is 'none' (a random encoder trains unfrozen)", self.epochs)
        _check_float("lr", self.lr, 0.0, 10.0, open_lo=True)
        _check_float("group_lr_ratio", self.group_lr_ratio, 1.0, 100.0)
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                _fail(f"stages[{i}]", "must be a Stage", stage)
            if stage.freeze_to >= self.n_groups:
                _fail(f"stages[{i}].freeze_to", f"must be < {self.n_groups} (the last group always trains)",
                      stage.freeze_to)
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        _check_float("pct_start", self.pct_start, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_float("div_factor", self.div_factor, 1.0, 1e6)
        _check_float("final_div_factor", self.final_div_factor, 1.0, 1e9)
        _check_float("moms_max", self.moms_max, 0.0, 1.0, open_hi=True)
        _check_float("moms_min", self.moms_min, 0.0, self.moms_max)
        _check_float("grad_clip", self.grad_clip, 0.0, 1e6)
        _check_choice("early_stopping_metric", self.early_stopping_metric, EARLY_STOPPING_METRICS)
        _check_int("early_stopping_patience", self.early_stopping_patience, 1, 1000)
        _check_float("early_stopping_min_delta", self.early_stopping_min_delta, 0.0)
        if not isinstance(self.auto_lr, bool):
            _fail("auto_lr", "must be a boolean", self.auto_lr)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_float("valid_pct", self.valid_pct, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            _fail("device", "must be auto, cpu, cuda or cuda:N", self.device)

    @property
    def n_groups(self) -> int:
        """Language model: each LSTM + (embedding, decoder); classifier: embedding + each LSTM + head."""
        return self.n_layers + (1 if self.task == "language_model" else 2)

    @property
    def lr_mult(self) -> float:
        """schedule.group_max_lrs' head-to-first-group ratio: group_lr_ratio per group."""
        return self.group_lr_ratio ** (self.n_groups - 1)

    @property
    def group_lrs(self) -> tuple[float, ...]:
        """schedule.group_max_lrs' explicit rates: text jobs always use the spread."""
        return ()

    def resolved_stages(self) -> tuple[Stage, ...]:
        """The schedule as it runs, each stage's head-group lr filled in (lr, then halved per default stage)."""
        stages = self.stages
        if not stages:
            last = self.n_groups - 1
            # A random encoder has nothing to protect from the new head: it trains unfrozen from the start.
            frozen_epochs = 0 if self.base.kind == "none" else self.freeze_epochs
            head = [Stage(frozen_epochs, last)] if frozen_epochs else []
            if self.task == "text_classification" and frozen_epochs:
                head += [Stage(1, f) for f in range(last - 1, 0, -1)]
            stages = tuple(head + ([Stage(self.epochs, 0)] if self.epochs else []))
        return tuple(dataclasses.replace(s, lr=s.lr or self.lr / 2**i) for i, s in enumerate(stages))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stages"] = [stage.to_dict() for stage in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextConfig:
        return cls(**recipe_fields(cls, data))
