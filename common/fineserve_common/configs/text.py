"""The ULMFiT jobs' config (language model, text classifier)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

from ..bounds import check, check_choice
from ..tasks import LANGUAGE_MODEL, TEXT, TEXT_CLASSIFICATION, family_tasks
from .recipe import (
    BaseWeights,
    OneCycle,
    Stage,
    as_dict,
    check_fields,
    check_run,
    check_stages,
    check_total_epochs,
    fail,
    recipe_fields,
)

TEXT_TASKS = tuple(t.name for t in family_tasks(TEXT))
TEXT_BASE_KINDS = ("none", "file", "store")


@dataclasses.dataclass(frozen=True)
class TextConfig(OneCycle):
    """ULMFiT's defaults (Howard & Ruder 2018), scaled by drop_mult; sizes are the published AWD-LSTM's."""

    task: str = LANGUAGE_MODEL
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
    """Run the LR range test first (on the job's model and batches) and use its valley suggestion as lr."""
    group_lr_ratio: float = 2.6
    """Each layer group's peak rate is the next one's divided by this (discriminative fine-tuning)."""
    stages: tuple[Stage, ...] = ()
    """() = the default schedule: language model freeze_epochs head-only then epochs unfrozen; classifier
    gradual unfreezing, one more group per epoch-long stage, then epochs unfrozen."""
    weight_decay: float = 0.01
    moms_max: float = 0.8
    """ULMFiT's momentum cycle (0.8, 0.7, 0.8): lower than the image recipe's."""
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
        check_choice("task", self.task, TEXT_TASKS)
        if not isinstance(self.base, BaseWeights):
            fail("base", "must be a BaseWeights", self.base)
        check_choice("base.kind", self.base.kind, TEXT_BASE_KINDS)
        if self.task == TEXT_CLASSIFICATION and self.base.kind == "file":
            fail("base.kind", "a classifier's encoder comes from a stored language model ('store') or 'none'",
                 self.base.kind)
        check_fields(self, ("emb_size", "hidden_size", "n_layers", "max_vocab", "min_freq", "bptt", "max_len",
                            "batch_size", "drop_mult", "freeze_epochs", "epochs"))
        if not self.stages and self.freeze_epochs + self.epochs < 1:
            fail("epochs", "freeze_epochs + epochs must be >= 1", self.epochs)
        if not self.stages and self.base.kind == "none" and self.epochs < 1:
            fail("epochs", "must be >= 1 when base.kind is 'none' (a random encoder trains unfrozen)", self.epochs)
        check(f"parameters of the model (max_vocab x emb_size + {self.n_layers} LSTMs of hidden_size "
              f"{self.hidden_size})", self.parameters, bound="text_parameters")
        check_fields(self, ("lr", "group_lr_ratio"))
        check_stages(self.stages, self.n_groups)
        check_total_epochs(self.resolved_stages())
        check_fields(self, ("weight_decay", "grad_clip"))
        self.check_one_cycle()
        check_run(self)

    @property
    def n_groups(self) -> int:
        """Language model: each LSTM + (embedding, decoder); classifier: embedding + each LSTM + head."""
        return self.n_layers + (1 if self.task == LANGUAGE_MODEL else 2)

    @property
    def parameters(self) -> int:
        """The AWD-LSTM's parameter count at most (a vocabulary of max_vocab; the decoder shares the embedding's
        weights): the engine's layers run emb_size -> hidden_size ... -> emb_size."""
        sizes = [self.emb_size] + [self.hidden_size] * (self.n_layers - 1) + [self.emb_size]
        lstms = sum(4 * out * (inp + out + 2) for inp, out in itertools.pairwise(sizes))
        return self.max_vocab * self.emb_size + lstms

    @property
    def lr_mult(self) -> float:
        """The head-to-first-group ratio of the discriminative spread: group_lr_ratio per group."""
        return self.group_lr_ratio ** (self.n_groups - 1)

    @property
    def lr_spread(self) -> float:
        """The spread in effect (the image config's name for it): lr_mult."""
        return self.lr_mult

    @property
    def group_lrs(self) -> tuple[float, ...]:
        """Explicit per-group rates: text jobs always use the spread."""
        return ()

    def resolved_stages(self) -> tuple[Stage, ...]:
        """The schedule as it runs, each stage's head-group lr filled in (lr, then halved per default stage)."""
        stages = self.stages
        if not stages:
            last = self.n_groups - 1
            # A random encoder has nothing to protect from the new head: it trains unfrozen from the start.
            frozen_epochs = 0 if self.base.kind == "none" else self.freeze_epochs
            head = [Stage(frozen_epochs, last)] if frozen_epochs else []
            if self.task == TEXT_CLASSIFICATION and frozen_epochs:
                head += [Stage(1, f) for f in range(last - 1, 0, -1)]
            stages = tuple(head + ([Stage(self.epochs, 0)] if self.epochs else []))
        return tuple(dataclasses.replace(s, lr=s.lr or self.lr / 2**i) for i, s in enumerate(stages))

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextConfig:
        return cls(**recipe_fields(cls, data))
