"""What every job request is checked for, whatever its task family: the task, its architecture, the worker
count, a data set of the task's layout, the base weights, numeric fields within the one bounds table, early
stopping, stages and the LR range. Tasks, archs, base sources, layouts and bounds all come from
fineserve_common, so the door and the engine cannot disagree about them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

from control.store import TenantStore
from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_common.bounds import BOUNDS, check, check_choice
from fineserve_common.configs import BaseWeights, Stage
from fineserve_common.configs.recipe import EARLY_STOPPING_METRICS, KEEP_CHOICES
from fineserve_common.errors import InvalidArgument, NotFound, Unimplemented
from fineserve_common.names import check_id, check_text, clip
from fineserve_common.spec import LrRange
from fineserve_common.tasks import (
    COLLABORATIVE_FILTERING,
    PRECISION_ENUMS,
    TABULAR_MODEL,
    TASKS,
    TEXT,
    VISION,
    Task,
    task_of_enum,
)
from service.paths import resolve_under_roots
from service.tenancy import owned

Request = training_pb2.CreateFineTuneJobRequest | training_pb2.FindLearningRateRequest

BASE_HINTS = {VISION: "torchvision weights, weights_file, stored_model, or random_init=true",
              TEXT: "stored_model (a LANGUAGE_MODEL), weights_file (WT103 layout, language models only) or "
                    "random_init=true"}
"""What `base is required` suggests, per family (tasks that train from scratch take no base)."""
WHY_NOT = {"torchvision": "torchvision weights are image backbones; text jobs take stored_model, weights_file or "
                          "random_init",
           "weights_file": "a classifier's encoder comes from a stored LANGUAGE_MODEL (base.stored_model)"}
"""Why a task refuses a base source its family's other tasks take."""


def task_of(req: Request) -> Task:
    if req.task == training_pb2.TASK_UNSPECIFIED:
        raise InvalidArgument("task is required (" + ", ".join(t.enum for t in TASKS) + ")")
    found = task_of_enum(training_pb2.Task.Name(req.task))
    if found is None:
        raise Unimplemented.planned(f"task {training_pb2.Task.Name(req.task)}", "a later issue of the roadmap")
    return found


OPTIONS = {"text": lambda t: t.family == TEXT, "collab": lambda t: t.name == COLLABORATIVE_FILTERING,
           "tabular": lambda t: t.name == TABULAR_MODEL}
"""Each task-specific option section of a request and the tasks it applies to."""


def check_options(req: Request, task: Task) -> None:
    """An option section of another task's is refused, not ignored: its values (a NaN among them) would otherwise
    pass unchecked."""
    for name, applies in OPTIONS.items():
        if name in req.DESCRIPTOR.fields_by_name and getattr(req, name).ListFields() and not applies(task):
            users = ", ".join(t.enum for t in TASKS if applies(t))
            raise InvalidArgument(f"{name} options apply to {users} jobs only, not {task.enum}")


def arch_of(req: Request, task: Task) -> str:
    arch = req.arch or task.default_arch
    if arch not in task.archs:
        raise InvalidArgument(f"arch {clip(arch)} is not one of {', '.join(task.archs)} for {task.enum}")
    return arch


def check_resources(req: Request, task: Task) -> None:
    """The request id and the resources: several data-parallel workers only for fine-tunes of the tasks that
    have them (FindLearningRate runs on one); CPUs and GPUs per worker finite and bounded (the control plane
    asks Ray for them as they are)."""
    check_id("request_id", req.request_id)
    workers = check("workers", req.resources.workers, "resources")
    check("gpus_per_worker", req.resources.gpus_per_worker, "resources")
    check("cpus_per_worker", req.resources.cpus_per_worker, "resources")
    fine_tune = isinstance(req, training_pb2.CreateFineTuneJobRequest)
    if workers > 1 and not (fine_tune and task.data_parallel):
        what = f"{task.enum} fine-tune jobs" if fine_tune else "FindLearningRate"
        raise InvalidArgument(f"resources.workers={workers}: {what} run on one worker; data-parallel training is "
                              "for " + " and ".join(t.enum for t in TASKS if t.data_parallel) + " fine-tune jobs")


def dataset_of(req: Request, store: TenantStore, task: Task) -> tuple[datasets_pb2.Dataset, str]:
    """(dataset, its directory): NOT_FOUND for an unknown id (or another tenant's), INVALID_ARGUMENT for a data
    set of another layout than the task learns from."""
    found = store.get_dataset(check_id("dataset_id", req.dataset_id)) if req.dataset_id else None
    if found is None:
        raise NotFound(f"dataset {clip(req.dataset_id)} not found" if req.dataset_id else "dataset_id is required")
    dataset, path = found
    layout = datasets_pb2.DatasetLayout.Name(dataset.layout)
    if layout != task.layout:
        raise InvalidArgument(f"dataset {dataset.id} is {layout}; task {task.enum} needs a {task.layout} dataset")
    return dataset, path


def base_weights(base: training_pb2.BaseModel, task: Task, arch: str, store: TenantStore,
                 roots: tuple[Path, ...]) -> BaseWeights:
    """The base weights a request names, among the sources its task accepts (tasks.Task.bases)."""
    which = base.WhichOneof("source")
    if which is None:
        raise InvalidArgument(f"base is required: {BASE_HINTS[task.family]}")
    if which not in task.bases:
        raise InvalidArgument(WHY_NOT.get(which, f"base.{which} does not apply to {task.enum}"))
    if which == "torchvision":
        name = check_text("base.torchvision.weights", base.torchvision.weights or "DEFAULT", 64)
        if not name.replace("_", "").isalnum():
            raise InvalidArgument(f"base.torchvision.weights {clip(name)} is not a weight enum member name")
        return BaseWeights("torchvision", name=name)
    if which == "weights_file":
        return BaseWeights("file", path=str(resolve_under_roots(base.weights_file, roots, "base.weights_file")))
    if which == "stored_model":
        return _stored_base(base.stored_model, task, arch, store)
    if not base.random_init:
        raise InvalidArgument("base.random_init must be true when it is the chosen source")
    return BaseWeights("none")


def check_from_scratch(base: training_pb2.BaseModel, task: Task) -> None:
    """A task without base sources (tasks.Task.bases == ()) takes no base but an explicit random_init."""
    if base.WhichOneof("source") not in (None, "random_init"):
        raise InvalidArgument(f"{task.enum} models train from scratch: leave base unset")


def _stored_base(ref: Any, task: Task, arch: str, store: TenantStore) -> BaseWeights:
    """A stored model of the caller's as the base: an image job's of the same arch (any image task: they share
    the ResNet body), a text job's a LANGUAGE_MODEL."""
    check_id("base.stored_model.name", ref.name)
    model, path = owned(store.get_model(ref.name, ref.version), f"base model {ref.name}/{ref.version or 'latest'}")
    name = f"{ref.name}/{model.ref.version}"
    if task.family == TEXT and model.task != training_pb2.LANGUAGE_MODEL:
        raise InvalidArgument(f"base model {name} is a {training_pb2.Task.Name(model.task)} model; text jobs start "
                              "from a LANGUAGE_MODEL")
    if task.family == VISION and model.arch != arch:
        raise InvalidArgument(f"base model {name} is a {model.arch}, not a {arch}")
    return BaseWeights("store", name=name, path=path)


def bounded(msg: Any, names: Iterable[str], where: str) -> dict[str, Any]:
    """The fields among names that msg sets, each within its bound (fineserve_common.bounds)."""
    return {name: check(name, getattr(msg, name), where) for name in names if msg.HasField(name)}


def taken(config: type) -> tuple[str, ...]:
    """The Hyperparameters a family's config takes: those named as its fields (early_stopping feeds the
    early_stopping_* ones)."""
    names = {f.name for f in fields(config)}
    if "early_stopping_metric" in names:
        names.add("early_stopping")
    return tuple(f.name for f in training_pb2.Hyperparameters.DESCRIPTOR.fields if f.name in names)


def numbers(config: type) -> list[str]:
    """The Hyperparameters a family's config takes that are bounded numbers (named as their bound)."""
    return [name for name in taken(config) if name in BOUNDS]


def refused(hp: training_pb2.Hyperparameters, config: type) -> list[str]:
    """The Hyperparameters a request sets that the family's config does not take: refused rather than
    silently ignored."""
    takes = taken(config)
    return [fd.name for fd, _ in hp.ListFields() if fd.name not in takes]


def device(req: Request) -> str:
    return "cpu" if req.resources.cpu_only else "auto"


def precision(hp: training_pb2.Hyperparameters) -> str:
    return PRECISION_ENUMS[training_pb2.Precision.Name(hp.precision)]


def keep(hp: training_pb2.Hyperparameters) -> dict[str, str]:
    """Which epoch's weights a job stores (every family): "best" or "last"; unset = the config's default."""
    if not hp.HasField("keep"):
        return {}
    return {"keep": check_choice("keep", hp.keep, KEEP_CHOICES, "hyperparameters")}


def recipe(hp: training_pb2.Hyperparameters, names: Iterable[str]) -> dict[str, Any]:
    """The transfer-learning recipe's config fields that image and text jobs share: the named numbers,
    precision, early stopping, keep and auto_lr (an explicit lr wins over it)."""
    values = bounded(hp, names, "hyperparameters") | {"precision": precision(hp)} | keep(hp)
    es = hp.early_stopping
    # checked even without a metric: a NaN min_delta must not pass silently
    check("min_delta", es.min_delta, "early_stopping", bound="early_stopping_min_delta")
    # proto3 reads an unset patience as 0, which no caller means: 0 takes the config's default
    patience = check("patience", es.patience, "early_stopping", bound="early_stopping_patience") if es.patience else 0
    if es.metric:
        metrics = tuple(m for m in EARLY_STOPPING_METRICS if m)
        values |= {"early_stopping_metric": check_choice("metric", es.metric, metrics, "early_stopping"),
                   "early_stopping_min_delta": check("min_delta", es.min_delta, "early_stopping",
                                                     bound="early_stopping_min_delta")}
        values |= {"early_stopping_patience": patience} if patience else {}
    if hp.auto_lr and not hp.HasField("lr"):
        values["auto_lr"] = True
    return values


def stages(hp: training_pb2.Hyperparameters, sized: bool) -> tuple[Stage, ...]:
    """The explicit schedule; sized False: a family without image sizes (a stage may not set one). Counted
    first, so that 10,000 stages are refused before any is built."""
    check("len(stages)", len(hp.stages), "hyperparameters", bound="n_stages")
    out = []
    for i, s in enumerate(hp.stages):
        if s.image_size and not sized:
            raise InvalidArgument(f"stages[{i}].image_size does not apply to text jobs")
        try:
            out.append(Stage(s.epochs, s.freeze_to, s.image_size, s.lr))
        except InvalidArgument as e:
            raise InvalidArgument(f"stages[{i}]: {e.message}") from None
    return tuple(out)


def lr_range(req: training_pb2.FindLearningRateRequest, n_groups: int) -> LrRange:
    """The sweep of an LR range test; 0 (unset) fields take LrRange's defaults."""
    default = LrRange()
    start = check("start_lr", req.start_lr or default.start_lr)
    end = check("end_lr", req.end_lr or default.end_lr)
    if not start < end:
        raise InvalidArgument(f"need start_lr < end_lr, got start_lr={start:g}, end_lr={end:g}")
    num_batches = check("num_batches", req.num_batches or default.num_batches)
    freeze_to = req.freeze_to if req.HasField("freeze_to") else None
    if freeze_to is not None and not 0 <= freeze_to < n_groups:
        raise InvalidArgument(f"freeze_to must be in [0, {n_groups - 1}] (the model has {n_groups} layer groups)")
    return LrRange(start, end, num_batches, freeze_to)
