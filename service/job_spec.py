"""Validates a CreateFineTuneJobRequest and turns it into the engine's plain-dict configuration.

Checked here, before queueing, so that a caller hears about a bad field at once (INVALID_ARGUMENT /
NOT_FOUND) instead of from a failed job minutes later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fineserve.v1 import training_pb2
from service.errors import invalid, not_found, unimplemented
from service.ids import MODEL_NAME
from service.paths import resolve_under_roots
from service.store import Store

ARCHS = ("resnet18", "resnet34", "resnet50")
PRECISIONS = {training_pb2.PRECISION_AUTO: "auto", training_pb2.FP32: "fp32", training_pb2.BF16: "bf16",
              training_pb2.FP16: "fp16"}

# field -> (engine key, low, high) for the optional numeric hyperparameters.
RANGES: dict[str, tuple[float, float]] = {
    "freeze_epochs": (0, 100), "epochs": (0, 1000), "lr": (1e-8, 10.0), "lr_mult": (1.0, 1e6),
    "weight_decay": (0.0, 1.0), "pct_start": (0.01, 0.99), "batch_size": (2, 1024), "image_size": (16, 1024),
    "valid_pct": (0.01, 0.9), "seed": (0, 2**62),
}


def engine_config(req: training_pb2.CreateFineTuneJobRequest, store: Store,
                  allowed_roots: tuple[Path, ...]) -> tuple[dict[str, Any], str]:
    """(FineTuneConfig dict, dataset directory); raises ApiError for anything the job could not run with."""
    if req.task == training_pb2.TASK_UNSPECIFIED:
        raise invalid("task is required (IMAGE_CLASSIFICATION)")
    if req.task != training_pb2.IMAGE_CLASSIFICATION:
        raise unimplemented(f"task {training_pb2.Task.Name(req.task)}", "a later issue of the roadmap")
    if not MODEL_NAME.match(req.model_name):
        raise invalid(f"model_name {req.model_name!r} must match {MODEL_NAME.pattern}")
    arch = req.arch or "resnet18"
    if arch not in ARCHS:
        raise invalid(f"arch {arch!r} is not one of {', '.join(ARCHS)}")
    if len(req.request_id) > 128:
        raise invalid("request_id is longer than 128 characters")
    if req.resources.workers > 1:
        raise unimplemented("multi-worker (data-parallel) training", "the distributed fine-tuning issue")
    found = store.get_dataset(req.dataset_id) if req.dataset_id else None
    if found is None:
        raise not_found(f"dataset {req.dataset_id!r} not found" if req.dataset_id else "dataset_id is required")
    dataset, dataset_path = found
    if dataset.layout != 1:  # IMAGE_FOLDERS
        raise invalid(f"dataset {dataset.id} has a layout that {arch} image classification cannot use")

    cfg: dict[str, Any] = {"arch": arch, "base": _base(req.base, arch, store, allowed_roots)}
    hp = req.hyperparameters
    for name, (low, high) in RANGES.items():
        if hp.HasField(name):
            value = getattr(hp, name)
            if not low <= value <= high:
                raise invalid(f"hyperparameters.{name}={value} is outside [{low:g}, {high:g}]")
            cfg[name] = value
    if hp.HasField("flip"):
        cfg["flip"] = hp.flip
    cfg["precision"] = PRECISIONS[hp.precision]
    if cfg["base"]["kind"] == "none" and cfg.get("epochs", 1) == 0:
        raise invalid("random_init needs epochs >= 1: a random body is trained in the unfrozen epochs")
    if cfg.get("epochs", 1) + cfg.get("freeze_epochs", 1) == 0:
        raise invalid("epochs and freeze_epochs are both 0: the job would train nothing")
    if req.resources.cpu_only:
        cfg["device"] = "cpu"
    return cfg, dataset_path


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
        found = store.get_model(ref.name, ref.version)
        if found is None:
            raise not_found(f"base model {ref.name}/{ref.version or 'latest'} not found")
        model, path = found
        if model.arch != arch:
            raise invalid(f"base model {ref.name}/{model.ref.version} is a {model.arch}, not a {arch}")
        return {"kind": "store", "path": path, "name": f"{ref.name}/{model.ref.version}"}
    if not base.random_init:
        raise invalid("base.random_init must be true when it is the chosen source")
    return {"kind": "none"}
