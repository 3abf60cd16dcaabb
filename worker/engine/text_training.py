"""ULMFiT's stages as jobs: fine_tune_language_model (stages 1-2: pretrain or fine-tune the AWD-LSTM language
model on a corpus) and fine_tune_text_classifier (stage 3: its encoder + a pooling head, gradual unfreezing).
Both run the image recipe's pieces: schedule.py's discriminative AdamW and 1cycle, train_loop's epochs."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .awd_lstm import AWDLSTMSize, LanguageModel, TextClassifier
from .checkpoint import (
    TrainingState,
    job_fingerprint,
    load_checkpoint,
    remove_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from .early_stopping import EarlyStopping
from .errors import DatasetError
from .job_setup import Event, log_event, private_rng
from .lr_finder import AUTO_LR_RANGE, lr_range_test, suggestions_event
from .model_card import FORMAT_VERSION, save_model
from .precision import grad_scaler, resolve_device, resolve_precision
from .schedule import group_max_lrs, make_optimizer, one_cycle
from .text_base_weights import TIED_DECODER, LMWeights, load_lm_weights, remap_vocab
from .text_config import TextConfig
from .text_data import LMStreams, SortedTextBatches, TextCsv, read_text_csv, tokenize_all
from .text_tokenizer import Vocab
from .train_loop import LoopSettings, ignore_event, never_stop, train_epoch, validate

Metrics = dict[str, float]


def run_stages(cfg: TextConfig, model: LanguageModel | TextClassifier, train: Any, valid: Any, settings: LoopSettings,
               out_dir: Path, fingerprint: str, on_event: Callable[[Event], None], should_stop: Callable[[], bool],
               metrics: Callable[[float, float], Metrics], resume: TrainingState | None = None,
               lr_finder: dict[str, Any] | None = None) -> list[Metrics]:
    """Each resolved stage as one 1cycle at its freeze depth with discriminative rates; metrics(valid_loss,
    accuracy) names the epoch's validation numbers. Language models start fresh streams every epoch.

    Early stopping and a checkpoint (for fingerprint, in out_dir) after every epoch work as in image jobs
    (early_stopping.py, checkpoint.py); resume, the job's checkpoint (see _checkpoint), continues after its epoch:
    the batches of an epoch depend only on (seed, epoch), so the result is the uninterrupted job's. lr_finder
    (auto_lr's range test) is saved with every checkpoint, so a resumed job does not run it again (see _auto_lr)."""
    history: list[Metrics] = []
    done = 0
    early = EarlyStopping(cfg.early_stopping_metric, cfg.early_stopping_patience, cfg.early_stopping_min_delta)
    if resume:
        load_model_state(model, resume.model)
        history, done = resume.history, resume.epoch
        early.load_state_dict(resume.early_stopping)
        restore_rng(resume.rng, settings.device)
        on_event(log_event(f"resumed from checkpoint after epoch {done}"))
    stages = cfg.resolved_stages()
    total = sum(s.epochs for s in stages)
    end = 0
    for index, stage in enumerate(stages):
        end += stage.epochs  # the stage's last epoch
        if early.stopped:
            break
        if done >= end:
            continue
        model.freeze_to(stage.freeze_to)
        groups = model.layer_groups()
        max_lrs = group_max_lrs(cfg, stage, len(groups))  # type: ignore[arg-type]
        on_event(log_event(f"stage {index}: {stage.epochs} epoch(s), groups before {stage.freeze_to} frozen, peak "
                           "lr per layer group " + ", ".join(f"{lr:.3g}" for lr in max_lrs)))
        opt = make_optimizer(groups, cfg)  # type: ignore[arg-type]
        sched = one_cycle(opt, cfg, max_lrs, stage.epochs * len(train))  # type: ignore[arg-type]
        scaler = grad_scaler(settings.device, settings.precision)
        if resume and resume.stage == index:
            opt.load_state_dict(resume.optimizer)
            sched.load_state_dict(resume.scheduler)
            scaler.load_state_dict(resume.scaler)
        while done < end and not early.stopped:
            done += 1
            start = time.perf_counter()
            train.set_epoch(done)
            _reset(model)
            train_loss = train_epoch(model, train, opt, sched, scaler, settings, phase=f"stage-{index}",
                                     epoch=done, epochs=total, on_event=on_event, should_stop=should_stop)
            _reset(model)
            valid_loss, accuracy = validate(model, valid, settings, should_stop)
            history.append({**metrics(valid_loss, accuracy), "train_loss": train_loss})
            on_event({"type": "epoch", "phase": f"stage-{index}", "epoch": done, "epochs": total, **history[-1],
                      "seconds": time.perf_counter() - start})
            if early.update(history[-1]):
                on_event(log_event(f"early stopping after epoch {done}: {early.metric} has not improved by more than "
                                   f"{early.min_delta:g} for {early.patience} epoch(s)"))
            state = TrainingState(index, done, model_state(model), opt.state_dict(), sched.state_dict(),
                                  scaler.state_dict(), early.state_dict(), history, rng_state(settings.device),
                                  lr_finder)
            on_event({"type": "checkpoint", "epoch": done,
                      "path": str(save_checkpoint(out_dir, state, fingerprint))})
    return history


def _reset(model: nn.Module) -> None:
    if isinstance(model, LanguageModel):
        model.reset()


def _lm_metrics(valid_loss: float, accuracy: float) -> Metrics:
    return {"valid_loss": valid_loss, "accuracy": accuracy, "perplexity": math.exp(min(valid_loss, 50.0))}


def _clas_metrics(valid_loss: float, accuracy: float) -> Metrics:
    return {"valid_loss": valid_loss, "accuracy": accuracy}


def _setup(cfg: TextConfig, dataset_dir: str | Path, on_event: Callable[[Event], None]
           ) -> tuple[LoopSettings, TextCsv, LMWeights | None]:
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    data = read_text_csv(dataset_dir, cfg.valid_pct, cfg.seed)
    on_event(log_event(f"data set {dataset_dir}: {len(data.train)} training and {len(data.valid)} validation texts"))
    on_event(log_event(f"device {device}, precision {precision} (requested {cfg.precision})"))
    base = load_lm_weights(cfg.base)
    on_event(log_event(f"base weights: {base.description if base else 'none (random initialisation)'}"))
    return LoopSettings(device, precision, grad_clip=cfg.grad_clip), data, base


def _card(cfg: TextConfig, task: str, size: AWDLSTMSize, vocab: Vocab, history: list[Metrics],
          base: LMWeights | None, data: TextCsv, settings: LoopSettings, **extra: Any) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION, "task": task, "arch": "awd_lstm",
        "size": {"vocab_size": size.vocab_size, "emb_size": size.emb_size, "hidden_size": size.hidden_size,
                 "n_layers": size.n_layers},
        "vocab": list(vocab.itos), "max_len": cfg.max_len, "text_window": TEXT_WINDOW, **extra,
        "base": {**cfg.base.to_dict(), "description": base.description if base else "random initialisation"},
        "hyperparameters": cfg.to_dict(), "stages": [s.to_dict() for s in cfg.resolved_stages()],
        "epochs_trained": len(history), "metrics": history[-1],
        "dataset": {"train_texts": len(data.train), "valid_texts": len(data.valid)},
        "precision": settings.precision, "versions": {"torch": torch.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclasses.dataclass
class _TextJob:
    """What a text job trains on, before its model exists (built under the job's private RNG, see build)."""

    settings: LoopSettings
    data: TextCsv
    base: LMWeights | None
    vocab: Vocab
    size: AWDLSTMSize
    train: Any
    valid: Any
    build: Callable[[], LanguageModel | TextClassifier]
    classes: list[str] = dataclasses.field(default_factory=list)
    """A classifier's labels."""


def _language_model_job(cfg: TextConfig, dataset_dir: str | Path, on_event: Callable[[Event], None]) -> _TextJob:
    """Stages 1-2's corpus (labels ignored, see lm_split), vocabulary and streams; build() maps the base's rows
    onto the vocabulary."""
    settings, data, base = _setup(cfg, dataset_dir, on_event)
    train_texts, valid_texts = lm_split([r.text for r in data.train + data.valid], cfg.valid_pct, cfg.seed)
    on_event(log_event(f"language model corpus: every text, labelled or not; {len(train_texts)} to train on, "
                       f"{len(valid_texts)} ({cfg.valid_pct:.0%}) held out for perplexity"))
    train_tokens = tokenize_all(train_texts)
    vocab = Vocab.build(train_tokens, cfg.max_vocab, cfg.min_freq)
    shape = base.size() if base else AWDLSTMSize(0, cfg.emb_size, cfg.hidden_size, cfg.n_layers)
    size = AWDLSTMSize(len(vocab), shape.emb_size, shape.hidden_size, shape.n_layers)
    on_event(log_event(f"vocabulary {len(vocab)} tokens; AWD-LSTM {size.emb_size}/{size.hidden_size}/"
                       f"{size.n_layers}"))
    train = LMStreams([vocab.numericalize(t) for t in train_tokens], cfg.batch_size, cfg.bptt, True, cfg.seed)
    valid = LMStreams([vocab.numericalize(t) for t in tokenize_all(valid_texts)],
                      min(cfg.batch_size, 16), cfg.bptt, False)

    def build() -> LanguageModel:
        model = LanguageModel(size, cfg.drop_mult, vocab.pad_id)
        if base:
            known = sum(base.vocab.index(t) is not None for t in vocab.itos)
            model.load_state_dict(remap_vocab(base, vocab), strict=False)
            on_event(log_event(f"{known} of {len(vocab)} tokens known to the base; the rest start from its mean"))
        return model.to(settings.device)

    return _TextJob(settings, data, base, vocab, size, train, valid, build)


def fine_tune_language_model(cfg: TextConfig, dataset_dir: str | Path, out_dir: str | Path,
                             on_event: Callable[[Event], None] = ignore_event,
                             should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """Stages 1-2: a vocabulary from the corpus (labels ignored, see lm_split), the base's rows mapped onto
    it, then the stages; writes model.safetensors + card.json (vocab included). Returns {metrics, card,
    epochs_trained}; metrics are valid_loss, perplexity, accuracy (next token) and train_loss."""
    job = _language_model_job(cfg, dataset_dir, on_event)
    # A language model's outputs are its vocabulary: a checkpoint of another corpus' vocabulary is not resumed.
    return _fine_tune(cfg, job, Path(out_dir), job_fingerprint(cfg, list(job.vocab.itos)), _lm_metrics, on_event,
                      should_stop)


def lm_split(texts: list[str], valid_pct: float, seed: int) -> tuple[list[str], list[str]]:
    """ULMFiT's language-model corpus is every text (the classifier's validation texts too: their labels are
    never read); a seeded valid_pct of them measures perplexity."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(len(texts) * valid_pct))
    return [texts[i] for i in order[n_valid:]], [texts[i] for i in order[:n_valid]]


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state to save: a language model's tied decoder weight is its embedding, stored once."""
    return {k: v for k, v in model.state_dict().items() if k != TIED_DECODER or not isinstance(model, LanguageModel)}


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """model_state's inverse: every key but the tied decoder weight must be there."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - ({TIED_DECODER} if isinstance(model, LanguageModel) else set()):
        raise ValueError(f"state does not fit the model (missing {missing}, unexpected {unexpected})")


# Which max_len tokens of a longer text a classifier reads: its end, which fast.ai's classifier pools over too (a
# review's verdict is mostly there: on imdb_sample the end read 0 to 7 points better than the beginning, in four
# paired comparisons). Recorded in the card; a card without it is from before and read the beginning.
TEXT_WINDOW = "end"


def classifier_inputs(texts: list[str], vocab: Vocab, max_len: int, window: str = TEXT_WINDOW) -> list[list[int]]:
    """Token ids of each text, at most max_len of them, from its end or its start (window)."""
    ids = [vocab.numericalize(t) for t in tokenize_all(texts)]
    return [x[-max_len:] if window == "end" else x[:max_len] for x in ids]


def _classifier_job(cfg: TextConfig, dataset_dir: str | Path, on_event: Callable[[Event], None]) -> _TextJob:
    """Stage 3's labelled rows and batches; the vocabulary is the base language model's, or with base "none" built
    from the training texts (the no-LM baseline). build() loads the base's encoder."""
    settings, data, base = _setup(cfg, dataset_dir, on_event)
    train_rows = [r for r in data.train if r.label]
    classes = data.classes
    if len(classes) < 2:
        raise DatasetError(f"text classification needs at least 2 labels among the training rows (found {classes})")
    valid_rows = [r for r in data.valid if r.label in classes]
    if not valid_rows:
        raise DatasetError("no validation row has a label seen in training")
    vocab = base.vocab if base else Vocab.build(tokenize_all([r.text for r in train_rows]), cfg.max_vocab,
                                                cfg.min_freq)
    size = base.size() if base else AWDLSTMSize(len(vocab), cfg.emb_size, cfg.hidden_size, cfg.n_layers)
    index = {c: i for i, c in enumerate(classes)}
    train = SortedTextBatches(classifier_inputs([r.text for r in train_rows], vocab, cfg.max_len),
                              [index[r.label] for r in train_rows], cfg.batch_size, vocab.pad_id, True, cfg.seed)
    valid = SortedTextBatches(classifier_inputs([r.text for r in valid_rows], vocab, cfg.max_len),
                              [index[r.label] for r in valid_rows], cfg.batch_size, vocab.pad_id, False)

    def build() -> TextClassifier:
        model = TextClassifier(size, len(classes), cfg.drop_mult, vocab.pad_id)
        if base:
            encoder = {k.removeprefix("encoder."): v for k, v in base.state.items() if k.startswith("encoder.")}
            model.encoder.load_state_dict(encoder)
        return model.to(settings.device)

    return _TextJob(settings, data, base, vocab, size, train, valid, build, classes)


def fine_tune_text_classifier(cfg: TextConfig, dataset_dir: str | Path, out_dir: str | Path,
                              on_event: Callable[[Event], None] = ignore_event,
                              should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """Stage 3: the base language model's encoder (and vocabulary) + a concat-pooling head trained on the labelled
    rows with gradual unfreezing. With base "none" the encoder is random and the vocabulary built from the
    training texts (the no-LM baseline). Returns {metrics, card, epochs_trained}."""
    job = _classifier_job(cfg, dataset_dir, on_event)
    return _fine_tune(cfg, job, Path(out_dir), job_fingerprint(cfg, job.classes), _clas_metrics, on_event,
                      should_stop)


def _fine_tune(cfg: TextConfig, job: _TextJob, out_dir: Path, fingerprint: str,
               metrics: Callable[[float, float], Metrics], on_event: Callable[[Event], None],
               should_stop: Callable[[], bool]) -> dict[str, Any]:
    """Either stage's training: auto_lr's range test first, the stages (resuming the job's checkpoint), then the
    model and its card. Returns {metrics, card, epochs_trained}, plus with auto_lr {lr_finder, chosen_lr}, as
    image jobs report them."""
    resume = _checkpoint(out_dir, fingerprint, on_event)
    with private_rng(cfg.seed, job.settings.device):
        model = job.build()
        run_cfg, lr_finder = _auto_lr(cfg, job, model, resume, on_event, should_stop)
        history = run_stages(run_cfg, model, job.train, job.valid, job.settings, out_dir, fingerprint, on_event,
                             should_stop, metrics, resume, lr_finder)
    labels = {"classes": job.classes, "n_classes": len(job.classes)} if job.classes else {}
    card = _card(run_cfg, cfg.task, job.size, job.vocab, history, job.base, job.data, job.settings, **labels)
    save_model(out_dir, model_state(model), card)
    remove_checkpoint(out_dir)
    what = "language model" if cfg.task == "language_model" else "text classifier"
    on_event(log_event(f"saved {what} to {out_dir}"))
    result = {"metrics": card["metrics"], "card": card, "epochs_trained": len(history)}
    return result | ({"lr_finder": lr_finder, "chosen_lr": run_cfg.lr} if lr_finder else {})


def _checkpoint(out_dir: Path, fingerprint: str, on_event: Callable[[Event], None]) -> TrainingState | None:
    """The job's checkpoint in out_dir, if one was made for this fingerprint (see run_stages)."""
    return load_checkpoint(out_dir, fingerprint, lambda message: on_event(log_event(message)))


def _auto_lr(cfg: TextConfig, job: _TextJob, model: LanguageModel | TextClassifier, resume: TrainingState | None,
             on_event: Callable[[Event], None], should_stop: Callable[[], bool]
             ) -> tuple[TextConfig, dict[str, Any] | None]:
    """cfg with auto_lr's lr (the range test's valley) and the test's result: the one the job's checkpoint
    recorded, or a test run now on the model about to train (which it leaves as it found it)."""
    if not cfg.auto_lr:
        return cfg, None
    lr_finder = resume.lr_finder if resume and resume.lr_finder else _range_test(
        cfg, job, model, **AUTO_LR_RANGE, on_event=on_event, should_stop=should_stop)
    chosen = dataclasses.replace(cfg, lr=lr_finder["suggestions"]["valley"])
    on_event(log_event(f"auto_lr: lr {chosen.lr:.3g}, the range test's valley suggestion"))
    return chosen, lr_finder


def find_text_lr(cfg: TextConfig, dataset_dir: str | Path, start_lr: float = 1e-7, end_lr: float = 10.0,
                 num_batches: int = 100, freeze_to: int | None = None,
                 on_event: Callable[[Event], None] = ignore_event,
                 should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """The LR range test (lr_finder.lr_range_test) on the model and training batches a text fine-tune of cfg
    starts from: same data, vocabulary, base weights and seed, the first stage's freeze depth unless freeze_to is
    given, the job's optimizer settings and precision. Returns lr_range_test's result; writes nothing."""
    job = (_language_model_job if cfg.task == "language_model" else _classifier_job)(cfg, dataset_dir, on_event)
    with private_rng(cfg.seed, job.settings.device):
        return _range_test(cfg, job, job.build(), start_lr=start_lr, end_lr=end_lr, num_batches=num_batches,
                           freeze_to=freeze_to, on_event=on_event, should_stop=should_stop)


def _range_test(cfg: TextConfig, job: _TextJob, model: LanguageModel | TextClassifier, *, start_lr: float,
                end_lr: float, num_batches: int, freeze_to: int | None, on_event: Callable[[Event], None],
                should_stop: Callable[[], bool]) -> dict[str, Any]:
    groups = model.layer_groups()
    depth = cfg.resolved_stages()[0].freeze_to if freeze_to is None else freeze_to
    if not 0 <= depth < len(groups):
        raise ValueError(f"freeze_to={depth}: this model has {len(groups)} layer groups, so it must be in "
                         f"[0, {len(groups) - 1}]")
    model.freeze_to(depth)
    job.train.set_epoch(1)
    _reset(model)
    on_event(log_event(f"LR range test: lr {start_lr:g} to {end_lr:g} over up to {num_batches} batches, "
                       f"freeze_to {depth}"))
    result = lr_range_test(model, job.train, lambda: make_optimizer(groups, cfg),  # type: ignore[arg-type]
                           settings=job.settings, start_lr=start_lr, end_lr=end_lr, num_batches=num_batches,
                           on_event=on_event, should_stop=should_stop)
    on_event(suggestions_event(result))
    return result


def run_text_job(spec: dict[str, Any], on_event: Callable[[Event], None] = ignore_event,
                 should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """A worker spec {"text_task", "config", "dataset_dir", "out_dir"} run by the stage its task names."""
    cfg = spec_config(spec)
    run = fine_tune_language_model if cfg.task == "language_model" else fine_tune_text_classifier
    return run(cfg, spec["dataset_dir"], spec["out_dir"], on_event, should_stop)


def spec_config(spec: dict[str, Any]) -> TextConfig:
    """The TextConfig of a worker spec of a text job or range test ({"text_task", "config", ...})."""
    return TextConfig.from_dict({**spec["config"], "task": spec["text_task"]})
