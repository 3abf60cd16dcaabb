"""Validates job requests and turns them into the worker's plain-dict job specs.

Checked here, before queueing, so that a caller hears about a bad field at once (INVALID_ARGUMENT /
NOT_FOUND) instead of from a failed job minutes later. The engine validates again: this is the fast path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control.store import Store
from fineserve.v1 import datasets_pb2, training_pb2
from service.embedding_jobs import TASKS as EMBEDDING_TASKS
from service.embedding_jobs import embedding_spec
from service.errors import invalid, unimplemented
from service.ids import MODEL_NAME
from service.job_dataset import check_common, early_stopping_fields, in_ranges, job_dataset, stored_base
from service.paths import resolve_under_roots
from service.text_job_spec import MAX_FREEZE_TO, TEXT_TASKS, text_config, text_spec

ARCHS = ("resnet18", "resnet34", "resnet50")
N_GROUPS = 3  # layer groups of every ResNet: stem+layer1+layer2 / layer3+layer4 / head
PRECISIONS = {training_pb2.PRECISION_AUTO: "auto", training_pb2.FP32: "fp32", training_pb2.BF16: "bf16",
              training_pb2.FP16: "fp16"}

# Optional numeric hyperparameters: proto field -> allowed [low, high]; the engine uses the same names.
RANGES: dict[str, tuple[float, float]] = {
    "freeze_epochs": (0, 100), "epochs": (0, 1000), "lr": (1e-8, 10.0), "lr_mult": (1.0, 1e6),
    "weight_decay": (0.0, 1.0), "pct_start": (0.01, 0.99), "batch_size": (2, 1024), "image_size": (16, 1024),
    "valid_pct": (0.01, 0.9), "seed": (0, 2**62), "div_factor": (1.0, 1e6), "final_div_factor": (1.0, 1e8),
    "moms_max": (0.0, 0.999), "moms_min": (0.0, 0.999), "label_smoothing": (0.0, 0.5),
    "mixup_alpha": (0.0, 10.0), "grad_clip": (0.0, 1e6), "threshold": (0.01, 0.99), "fbeta_beta": (0.01, 100.0),
}
DEFAULT_BATCH_SIZE = 32  # the engine's FineTuneConfig.batch_size
# Implemented tasks: the engine's task name and the dataset layout each one learns from.
TASKS = {training_pb2.IMAGE_CLASSIFICATION: ("image_classification", datasets_pb2.IMAGE_FOLDERS),
         training_pb2.MULTI_LABEL_CLASSIFICATION: ("multi_label_classification", datasets_pb2.IMAGE_LABELS_CSV),
         training_pb2.SEGMENTATION: ("segmentation", datasets_pb2.IMAGE_MASKS)}


# Job kinds (Job.kind).
FINE_TUNE = "fine_tune"
FIND_LR = "find_lr"


def job_spec(job: training_pb2.Job, store: Store, roots: tuple[Path, ...], staging: Path) -> dict[str, Any]:
    """The worker's spec for a job, built at creation and rebuilt when a job is re-queued.

    Ids in the request (dataset, base model) resolve only among the job's tenant's own (a TenantStore).
    """
    own = store.for_tenant(job.tenant)
    if job.kind == FIND_LR:
        return find_lr_spec(job.lr_request, own, roots)
    return fine_tune_spec(job.request, own, roots, staging)


def fine_tune_spec(req: training_pb2.CreateFineTuneJobRequest, store: Store, roots: tuple[Path, ...],
                   out_dir: Path) -> dict[str, Any]:
    if not MODEL_NAME.match(req.model_name):
        raise invalid(f"model_name {req.model_name!r} must match {MODEL_NAME.pattern}")
    if req.task in EMBEDDING_TASKS:
        return embedding_spec(req, store, RANGES, PRECISIONS, out_dir)
    if req.task in TEXT_TASKS:
        return text_spec(req, store, roots, RANGES, PRECISIONS, out_dir)
    cfg, dataset_dir = _config(req, store, roots)
    spec = {"config": cfg, "dataset_dir": dataset_dir, "out_dir": str(out_dir)}
    workers = req.resources.workers
    if workers > 1:
        batch = cfg.get("batch_size", DEFAULT_BATCH_SIZE)
        if batch < 2 * workers:
            raise invalid(f"hyperparameters.batch_size={batch} is the global batch: {workers} workers need at "
                          f"least {2 * workers} (2 per worker)")
        if cfg.get("auto_lr"):
            raise invalid("auto_lr runs the LR range test on one worker: run FindLearningRate, then set "
                          "hyperparameters.lr for a data-parallel job")
        spec |= {"workers": workers}
    return spec


def find_lr_spec(req: training_pb2.FindLearningRateRequest, store: Store, roots: tuple[Path, ...]) -> dict[str, Any]:
    if req.task in EMBEDDING_TASKS:
        raise unimplemented(f"FindLearningRate for {training_pb2.Task.Name(req.task)}", "a later issue")
    if req.task in TEXT_TASKS:  # the engine checks freeze_to against the model's groups (they follow n_layers)
        task, cfg, dataset_dir = text_config(req, store, roots, RANGES, PRECISIONS)
        return {"text_task": task, "config": cfg, "dataset_dir": dataset_dir, "range": _lr_range(req, MAX_FREEZE_TO)}
    cfg, dataset_dir = _config(req, store, roots)
    return {"config": cfg, "dataset_dir": dataset_dir, "range": _lr_range(req, N_GROUPS - 1)}


def _lr_range(req: training_pb2.FindLearningRateRequest, max_freeze_to: int) -> dict[str, Any]:
    start, end = req.start_lr or 1e-7, req.end_lr or 10.0
    if not 0 < start < end <= 1e3:
        raise invalid(f"need 0 < start_lr < end_lr <= 1000, got start_lr={start:g}, end_lr={end:g}")
    if not 0 <= req.num_batches <= 10_000:
        raise invalid("num_batches must be in [0, 10000] (0 = 100)")
    rng: dict[str, Any] = {"start_lr": start, "end_lr": end, "num_batches": req.num_batches or 100}
    if req.HasField("freeze_to"):
        if not 0 <= req.freeze_to <= max_freeze_to:
            raise invalid(f"freeze_to must be in [0, {max_freeze_to}]")
        rng["freeze_to"] = req.freeze_to
    return rng


def _config(req: Any, store: Store, roots: tuple[Path, ...]) -> tuple[dict[str, Any], str]:
    """(FineTuneConfig dict, dataset directory) from the fields both job requests share."""
    if req.task == training_pb2.TASK_UNSPECIFIED:
        raise invalid("task is required (" + ", ".join(training_pb2.Task.Name(t) for t in TASKS) + ")")
    if req.task not in TASKS:
        raise unimplemented(f"task {training_pb2.Task.Name(req.task)}", "a later issue of the roadmap")
    task, layout = TASKS[req.task]
    arch = req.arch or "resnet18"
    if arch not in ARCHS:
        raise invalid(f"arch {arch!r} is not one of {', '.join(ARCHS)}")
    check_common(req)
    dataset, dataset_path = job_dataset(req, store, layout)
    cfg: dict[str, Any] = {"task": task, "arch": arch, "base": _base(req.base, arch, store, roots),
                           **_hyper(req.hyperparameters)}
    if req.hyperparameters.HasField("void_code"):
        if task != "segmentation":
            raise invalid("hyperparameters.void_code applies to SEGMENTATION only")
        if req.hyperparameters.void_code and req.hyperparameters.void_code not in dataset.summary.classes:
            raise invalid(f"hyperparameters.void_code {req.hyperparameters.void_code!r} is not a class of "
                          f"dataset {dataset.id} (its codes.txt)")
        cfg["void_code"] = req.hyperparameters.void_code
    if cfg["base"]["kind"] == "none" and cfg.get("epochs", 1) == 0 and not cfg.get("stages"):
        raise invalid("random_init needs epochs >= 1: a random body is trained in the unfrozen epochs")
    if req.resources.cpu_only:
        cfg["device"] = "cpu"
    return cfg, dataset_path


def _hyper(hp: training_pb2.Hyperparameters) -> dict[str, Any]:
    cfg = in_ranges(hp, RANGES, "hyperparameters")
    if cfg.get("moms_min", 0.85) > cfg.get("moms_max", 0.95):
        raise invalid("hyperparameters.moms_min must not exceed moms_max")
    if hp.HasField("flip"):
        cfg["flip"] = hp.flip
    cfg["precision"] = PRECISIONS[hp.precision]
    if hp.group_lrs:
        if len(hp.group_lrs) != N_GROUPS or not all(0 < x <= 10 for x in hp.group_lrs):
            raise invalid(f"hyperparameters.group_lrs needs {N_GROUPS} rates in (0, 10], earliest group first")
        cfg["group_lrs"] = list(hp.group_lrs)
    if hp.stages:
        cfg["stages"] = [_stage(i, s) for i, s in enumerate(hp.stages)]
    elif cfg.get("epochs", 1) + cfg.get("freeze_epochs", 1) == 0:
        raise invalid("epochs and freeze_epochs are both 0: the job would train nothing")
    cfg.update(early_stopping_fields(hp.early_stopping))
    if hp.auto_lr and not hp.HasField("lr"):
        cfg["auto_lr"] = True
    return cfg


def _stage(i: int, s: training_pb2.TrainingStage) -> dict[str, Any]:
    if not 1 <= s.epochs <= 1000:
        raise invalid(f"stages[{i}].epochs must be in [1, 1000]")
    if not 0 <= s.freeze_to < N_GROUPS:
        raise invalid(f"stages[{i}].freeze_to must be in [0, {N_GROUPS - 1}]")
    if s.image_size and not 16 <= s.image_size <= 1024:
        raise invalid(f"stages[{i}].image_size must be 0 or in [16, 1024]")
    if not 0 <= s.lr <= 10:
        raise invalid(f"stages[{i}].lr must be in [0, 10] (0 = the default rule)")
    return {"epochs": s.epochs, "freeze_to": s.freeze_to, "image_size": s.image_size, "lr": s.lr}


def _base(base: training_pb2.BaseModel, arch: str, store: Store, roots: tuple[Path, ...]) -> dict[str, str]:
    which = base.WhichOneof("source")
    if which is None:
        raise invalid("base is required: torchvision weights, weights_file, stored_model, or random_init=true")
    if which == "torchvision":
        name = base.torchvision.weights or "DEFAULT"
        if not name.replace("_", "").isalnum():
            raise invalid(f"base.torchvision.weights {name!r} is not a weight enum member name")
        return {"kind": "torchvision", "name": name}
    if which == "weights_file":
        return {"kind": "file", "path": str(resolve_under_roots(base.weights_file, roots, "base.weights_file"))}
    if which == "stored_model":
        ref = base.stored_model
        model, path = stored_base(store, ref)
        if model.arch != arch:
            raise invalid(f"base model {ref.name}/{model.ref.version} is a {model.arch}, not a {arch}")
        return {"kind": "store", "path": path, "name": f"{ref.name}/{model.ref.version}"}
    if not base.random_init:
        raise invalid("base.random_init must be true when it is the chosen source")
    return {"kind": "none"}
