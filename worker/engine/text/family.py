"""ULMFiT's stages as jobs: the language model (stages 1-2: pretrain or fine-tune the AWD-LSTM on a corpus) and
the text classifier (stage 3: its encoder + a pooling head, gradual unfreezing). The runner trains both with the
image recipe's pieces: discriminative AdamW, 1cycle stages, train_epoch."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fineserve_common.configs import Stage, TextConfig
from fineserve_common.events import Log

from ..early_stopping import EarlyStopping
from ..errors import DatasetError
from ..job import TaskJob, early_stopping_of
from ..precision import resolve_device, resolve_precision
from ..schedule import stage_optimizer
from ..train_loop import Batches, LoopSettings, OnEvent, ShouldStop, validate
from .awd_lstm import AWDLSTMSize, LanguageModel, TextClassifier
from .base_weights import TIED_DECODER, LMWeights, load_lm_weights, remap_vocab
from .corpus import tokenized
from .data import LMStreams, SortedTextBatches, read_text_csv, tokenize_all
from .tokenizer import Vocab

# Which max_len tokens of a longer text a classifier reads: its end, which fast.ai's classifier pools over too (a
# review's verdict is mostly there: on imdb_sample the end read 0 to 7 points better than the beginning, in four
# paired comparisons). Recorded in the card; a card without it is from before and read the beginning.
TEXT_WINDOW = "end"
IdsT = TypeVar("IdsT", list[int], np.ndarray)


def lm_split(texts: list[str], valid_pct: float, seed: int) -> tuple[list[str], list[str]]:
    """ULMFiT's language-model corpus is every text (the classifier's validation texts too: their labels are
    never read); a seeded valid_pct of them measures perplexity."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(len(texts) * valid_pct))
    return [texts[i] for i in order[n_valid:]], [texts[i] for i in order[:n_valid]]


def classifier_inputs(texts: list[str], vocab: Vocab, max_len: int, window: str = TEXT_WINDOW) -> list[list[int]]:
    """Token ids of each text, at most max_len of them, from its end or its start (window)."""
    return windowed([vocab.numericalize(t) for t in tokenize_all(texts)], max_len, window)


def windowed(ids: Sequence[IdsT], max_len: int, window: str = TEXT_WINDOW) -> list[IdsT]:
    """At most max_len ids of each text, from its end or its start (window)."""
    return [x[-max_len:] if window == "end" else x[:max_len] for x in ids]


class TextJob(TaskJob):
    """What both text tasks share: the CSV, the base weights, the vocabulary's and sizes' card, the stages."""

    model_type: type[LanguageModel | TextClassifier]
    train: LMStreams | SortedTextBatches
    valid: LMStreams | SortedTextBatches
    vocab: Vocab
    size: AWDLSTMSize

    def __init__(self, cfg: TextConfig, dataset_dir: Path, on_event: OnEvent) -> None:
        self.cfg: TextConfig = cfg
        self.task, self.auto_lr = cfg.task, cfg.auto_lr
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.data = read_text_csv(dataset_dir, cfg.valid_pct, cfg.seed)
        on_event(Log(f"data set {dataset_dir}: {len(self.data.train)} training and {len(self.data.valid)} "
                     "validation texts"))
        on_event(Log(f"device {self.device}, precision {self.precision} (requested {cfg.precision})"))
        # Every text, labelled or not, so that the language model and then its classifier share one cache entry.
        self.corpus = tokenized([r.text for r in self.data.train + self.data.valid], on_event)
        self.base: LMWeights | None = load_lm_weights(cfg.base)
        on_event(Log(f"base weights: {self.base.description if self.base else 'none (random initialisation)'}"))
        self.settings = LoopSettings(self.device, self.precision, grad_clip=cfg.grad_clip)

    @classmethod
    def layer_groups(cls, cfg: Any) -> int | None:
        return cfg.n_groups

    def stages(self) -> tuple[Stage, ...]:
        return self.cfg.resolved_stages()

    def start_stage(self, model: nn.Module, stage: Stage) -> tuple[nn.Module, torch.optim.Optimizer, list[float]]:
        assert isinstance(model, self.model_type)
        model.freeze_to(stage.freeze_to)
        groups = model.layer_groups()
        return (model, *stage_optimizer(groups, self.cfg, stage))

    def loaders(self, stage: Stage) -> tuple[Batches, Any]:
        return self.train, self.valid

    def epoch_batches(self, train: Batches, epoch: int, model: nn.Module) -> Batches:
        self.train.set_epoch(epoch)
        _reset(model)
        return train

    def epoch_metrics(self, model: nn.Module, valid: Any, should_stop: ShouldStop) -> dict[str, float]:
        _reset(model)
        valid_loss, accuracy = validate(model, valid, self.settings, should_stop)
        return {"valid_loss": valid_loss, "accuracy": accuracy}

    def early_stopping(self) -> EarlyStopping:
        return early_stopping_of(self.cfg)

    def range_test_batches(self, model: nn.Module, stage: Stage) -> Batches:
        assert isinstance(model, self.model_type)
        model.freeze_to(stage.freeze_to)
        return self.epoch_batches(self.train, 1, model)

    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        size, base = self.size, self.base
        return {
            "arch": "awd_lstm",
            "size": {"vocab_size": size.vocab_size, "emb_size": size.emb_size, "hidden_size": size.hidden_size,
                     "n_layers": size.n_layers},
            "vocab": list(self.vocab.itos), "max_len": self.cfg.max_len, "text_window": TEXT_WINDOW,
            "base": {**self.cfg.base.to_dict(),
                     "description": base.description if base else "random initialisation"},
            "stages": [s.to_dict() for s in self.stages()],
            "dataset": {"train_texts": len(self.data.train), "valid_texts": len(self.data.valid)},
        }


def _reset(model: nn.Module) -> None:
    if isinstance(model, LanguageModel):
        model.reset()


class LanguageModelJob(TextJob):
    """Stages 1-2: a vocabulary from the corpus (labels ignored, see lm_split), the base's rows mapped onto it.
    Its outputs are its vocabulary, so a checkpoint of another corpus' vocabulary is not resumed."""

    model_type = LanguageModel
    saved = "language model"

    def __init__(self, cfg: TextConfig, dataset_dir: Path, on_event: OnEvent) -> None:
        super().__init__(cfg, dataset_dir, on_event)
        train_texts, valid_texts = lm_split([r.text for r in self.data.train + self.data.valid], cfg.valid_pct,
                                            cfg.seed)
        on_event(Log(f"language model corpus: every text, labelled or not; {len(train_texts)} to train on, "
                     f"{len(valid_texts)} ({cfg.valid_pct:.0%}) held out for perplexity"))
        self.vocab = self.corpus.vocab(train_texts, cfg.max_vocab, cfg.min_freq)
        shape = self.base.size() if self.base else AWDLSTMSize(0, cfg.emb_size, cfg.hidden_size, cfg.n_layers)
        self.size = AWDLSTMSize(len(self.vocab), shape.emb_size, shape.hidden_size, shape.n_layers)
        on_event(Log(f"vocabulary {len(self.vocab)} tokens; AWD-LSTM {self.size.emb_size}/"
                     f"{self.size.hidden_size}/{self.size.n_layers}"))
        self.fingerprint_of = list(self.vocab.itos)
        self.train = LMStreams(self.corpus.numericalize(train_texts, self.vocab), cfg.batch_size, cfg.bptt, True,
                               cfg.seed)
        self.valid = LMStreams(self.corpus.numericalize(valid_texts, self.vocab), min(cfg.batch_size, 16), cfg.bptt,
                               False)

    def build(self, on_event: OnEvent) -> nn.Module:
        model = LanguageModel(self.size, self.cfg.drop_mult, self.vocab.pad_id)
        if self.base:
            known = sum(self.base.vocab.index(t) is not None for t in self.vocab.itos)
            model.load_state_dict(remap_vocab(self.base, self.vocab), strict=False)
            on_event(Log(f"{known} of {len(self.vocab)} tokens known to the base; the rest start from its "
                         "mean"))
        return model.to(self.device)

    def epoch_metrics(self, model: nn.Module, valid: Any, should_stop: ShouldStop) -> dict[str, float]:
        metrics = super().epoch_metrics(model, valid, should_stop)
        return {**metrics, "perplexity": math.exp(min(metrics["valid_loss"], 50.0))}

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The tied decoder weight is the embedding: stored once (safetensors refuses shared storage)."""
        return {k: v for k, v in model.state_dict().items() if k != TIED_DECODER}

    def load_model_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """model_state's inverse: every key but the tied decoder weight must be there."""
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {TIED_DECODER}:
            raise ValueError(f"state does not fit the model (missing {missing}, unexpected {unexpected})")


class ClassifierJob(TextJob):
    """Stage 3: the base language model's encoder (and vocabulary) + a concat-pooling head trained on the labelled
    rows. With base "none" the encoder is random and the vocabulary built from the training texts (the no-LM
    baseline)."""

    model_type = TextClassifier
    saved = "text classifier"

    def __init__(self, cfg: TextConfig, dataset_dir: Path, on_event: OnEvent) -> None:
        super().__init__(cfg, dataset_dir, on_event)
        train_rows = [r for r in self.data.train if r.label]
        self.classes = self.data.classes
        if len(self.classes) < 2:
            raise DatasetError("text classification needs at least 2 labels among the training rows (found "
                               f"{self.classes})")
        valid_rows = self.valid_rows = [r for r in self.data.valid if r.label in self.classes]
        if not valid_rows:
            raise DatasetError("no validation row has a label seen in training")
        base = self.base
        self.vocab = base.vocab if base else self.corpus.vocab([r.text for r in train_rows], cfg.max_vocab,
                                                               cfg.min_freq)
        self.size = base.size() if base else AWDLSTMSize(len(self.vocab), cfg.emb_size, cfg.hidden_size,
                                                         cfg.n_layers)
        self.fingerprint_of = self.classes
        index = {c: i for i, c in enumerate(self.classes)}
        self.train = SortedTextBatches(self._inputs([r.text for r in train_rows]),
                                       [index[r.label] for r in train_rows], cfg.batch_size, self.vocab.pad_id, True,
                                       cfg.seed)
        self.valid = SortedTextBatches(self._inputs([r.text for r in valid_rows]),
                                       [index[r.label] for r in valid_rows], cfg.batch_size, self.vocab.pad_id, False)

    def _inputs(self, texts: list[str]) -> list[np.ndarray]:
        return windowed(self.corpus.numericalize(texts, self.vocab), self.cfg.max_len)

    def build(self, on_event: OnEvent) -> nn.Module:
        model = TextClassifier(self.size, len(self.classes), self.cfg.drop_mult, self.vocab.pad_id)
        if self.base:
            encoder = {k.removeprefix("encoder."): v for k, v in self.base.state.items() if k.startswith("encoder.")}
            model.encoder.load_state_dict(encoder)
        return model.to(self.device)

    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        return {**super().card_fields(model, metrics), "classes": self.classes, "n_classes": len(self.classes)}

    def served_metrics(self, served: Any) -> dict[str, float]:
        """Each validation text read alone, in fp32, as TextClassifierModel serves it (training validates
        padded batches at the training precision); a text with no characters, which serving refuses, is left out."""
        rows = [r for r in self.valid_rows if r.text.strip()]
        probs = served.predict_proba([r.text for r in rows])
        labels = torch.tensor([self.classes.index(r.label) for r in rows])
        return {"valid_loss": float(F.nll_loss(probs.clamp_min(1e-12).log(), labels)),
                "accuracy": float((probs.argmax(dim=1) == labels).double().mean())}
