"""Validates LANGUAGE_MODEL and TEXT_CLASSIFICATION job requests into the worker's text job spec.

Kept beside job_spec.py (the image path), which calls it: text jobs take another layout (TEXT_CSV), another
architecture (awd_lstm), other base weights and other layer groups; the shared numeric bounds come from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control.store import Store
from fineserve.v1 import datasets_pb2, training_pb2
from service.errors import invalid
from service.job_dataset import check_common, early_stopping_fields, in_ranges, job_dataset, stored_base
from service.paths import resolve_under_roots

TEXT_TASKS = {training_pb2.LANGUAGE_MODEL: "language_model", training_pb2.TEXT_CLASSIFICATION: "text_classification"}
ARCH = "awd_lstm"
# Hyperparameters that text jobs take (the others are image-only and refused when set).
SHARED = ("freeze_epochs", "epochs", "lr", "weight_decay", "pct_start", "batch_size", "valid_pct", "seed",
          "div_factor", "final_div_factor", "moms_max", "moms_min", "grad_clip")
IMAGE_ONLY = ("lr_mult", "image_size", "flip", "label_smoothing", "mixup_alpha", "threshold", "fbeta_beta", "void_code")
# The largest freeze_to a request may name (stages, FindLearningRate). The engine checks it against the model's own
# layer groups, whose count follows n_layers (at most 8): n_layers + 1 for a language model, + 2 for a classifier.
MAX_FREEZE_TO = 10
TEXT_RANGES: dict[str, tuple[float, float]] = {
    "emb_size": (2, 4096), "hidden_size": (2, 8192), "n_layers": (1, 8), "max_vocab": (16, 1_000_000),
    "min_freq": (1, 1_000_000), "bptt": (8, 10_000), "max_len": (8, 100_000), "drop_mult": (0.0, 2.0),
    "group_lr_ratio": (1.0, 100.0),
}


def text_spec(req: training_pb2.CreateFineTuneJobRequest, store: Store, roots: tuple[Path, ...],
              ranges: dict[str, tuple[float, float]], precisions: dict[int, str], out_dir: Path) -> dict[str, Any]:
    """{"text_task", "config": TextConfig dict, "dataset_dir", "out_dir"}; ranges and precisions are
    job_spec's, for the hyperparameters text jobs share with image jobs."""
    task, cfg, dataset_dir = text_config(req, store, roots, ranges, precisions)
    return {"text_task": task, "config": cfg, "dataset_dir": dataset_dir, "out_dir": str(out_dir)}


def text_config(req: training_pb2.CreateFineTuneJobRequest | training_pb2.FindLearningRateRequest, store: Store,
                roots: tuple[Path, ...], ranges: dict[str, tuple[float, float]],
                precisions: dict[int, str]) -> tuple[str, dict[str, Any], str]:
    """(task, TextConfig dict, dataset directory) from the fields a fine-tune and its range test share."""
    task = TEXT_TASKS[req.task]
    if req.arch not in ("", ARCH):
        raise invalid(f"arch {req.arch!r}: {task} jobs use {ARCH!r}")
    check_common(req)
    dataset, dataset_path = job_dataset(req, store, datasets_pb2.TEXT_CSV)
    if task == "text_classification" and len(dataset.summary.classes) < 2:
        raise invalid(f"dataset {dataset.id} has {len(dataset.summary.classes)} label(s); a classifier needs 2+")
    cfg = {"task": task, "base": _base(req.base, task, store, roots),
           **_hyper(req.hyperparameters, req.text, ranges, precisions)}
    if req.resources.cpu_only:
        cfg["device"] = "cpu"
    return task, cfg, dataset_path


def _hyper(hp: training_pb2.Hyperparameters, text: training_pb2.TextOptions,
           ranges: dict[str, tuple[float, float]], precisions: dict[int, str]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for name in IMAGE_ONLY:
        if hp.HasField(name):
            raise invalid(f"hyperparameters.{name} does not apply to text jobs")
    if hp.group_lrs:
        raise invalid("group_lrs does not apply to text jobs: their groups' rates follow text.group_lr_ratio")
    cfg.update(in_ranges(hp, ranges, "hyperparameters", SHARED))
    if hp.auto_lr and not hp.HasField("lr"):  # as image jobs: an explicit lr wins
        cfg["auto_lr"] = True
    cfg.update(early_stopping_fields(hp.early_stopping))
    cfg.update(in_ranges(text, TEXT_RANGES, "text"))
    if cfg.get("moms_min", 0.7) > cfg.get("moms_max", 0.8):
        raise invalid("hyperparameters.moms_min must not exceed moms_max")
    cfg["precision"] = precisions[hp.precision]
    if hp.stages:
        cfg["stages"] = [_stage(i, s) for i, s in enumerate(hp.stages)]
    elif cfg.get("epochs", 3) + cfg.get("freeze_epochs", 1) == 0:
        raise invalid("epochs and freeze_epochs are both 0: the job would train nothing")
    return cfg


def _stage(i: int, s: training_pb2.TrainingStage) -> dict[str, Any]:
    """freeze_to is checked against the model's group count by the engine (it depends on n_layers)."""
    if not 1 <= s.epochs <= 1000:
        raise invalid(f"stages[{i}].epochs must be in [1, 1000]")
    if not 0 <= s.freeze_to <= MAX_FREEZE_TO:
        raise invalid(f"stages[{i}].freeze_to must be in [0, {MAX_FREEZE_TO}]")
    if s.image_size:
        raise invalid(f"stages[{i}].image_size does not apply to text jobs")
    if not 0 <= s.lr <= 10:
        raise invalid(f"stages[{i}].lr must be in [0, 10] (0 = the default rule)")
    return {"epochs": s.epochs, "freeze_to": s.freeze_to, "lr": s.lr}


def _base(base: training_pb2.BaseModel, task: str, store: Store, roots: tuple[Path, ...]) -> dict[str, str]:
    which = base.WhichOneof("source")
    if which is None:
        raise invalid("base is required: stored_model (a LANGUAGE_MODEL), weights_file (WT103 layout, language "
                      "models only) or random_init=true")
    if which == "torchvision":
        raise invalid("torchvision weights are image backbones; text jobs take stored_model, weights_file or "
                      "random_init")
    if which == "weights_file":
        if task != "language_model":
            raise invalid("a classifier's encoder comes from a stored LANGUAGE_MODEL (base.stored_model)")
        return {"kind": "file", "path": str(resolve_under_roots(base.weights_file, roots, "base.weights_file"))}
    if which == "stored_model":
        ref = base.stored_model
        model, path = stored_base(store, ref)
        if model.task != training_pb2.LANGUAGE_MODEL:
            raise invalid(f"base model {ref.name}/{model.ref.version} is a {training_pb2.Task.Name(model.task)} "
                          "model; text jobs start from a LANGUAGE_MODEL")
        return {"kind": "store", "path": path, "name": f"{ref.name}/{model.ref.version}"}
    if not base.random_init:
        raise invalid("base.random_init must be true when it is the chosen source")
    return {"kind": "none"}
