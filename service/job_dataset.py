"""What every fine-tune request is checked for, whatever its task: its id and worker count, a dataset of the
layout the task learns from, numeric fields within their ranges, and early stopping (image and text jobs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from control.store import Store
from fineserve.v1 import datasets_pb2, training_pb2
from service.errors import invalid, not_found

MAX_WORKERS = 64
# What may train on several data-parallel workers: fine-tune jobs of these tasks (FindLearningRate runs on one).
DATA_PARALLEL_TASKS = (training_pb2.IMAGE_CLASSIFICATION, training_pb2.SEGMENTATION)


def check_common(req: Any) -> None:
    if len(req.request_id) > 128:
        raise invalid("request_id is longer than 128 characters")
    workers = req.resources.workers
    if not 0 <= workers <= MAX_WORKERS:
        raise invalid(f"resources.workers={workers} is outside [0, {MAX_WORKERS}]")
    fine_tune = isinstance(req, training_pb2.CreateFineTuneJobRequest)
    if workers > 1 and not (fine_tune and req.task in DATA_PARALLEL_TASKS):
        what = f"{training_pb2.Task.Name(req.task)} fine-tune jobs" if fine_tune else "FindLearningRate"
        raise invalid(f"resources.workers={workers}: {what} run on one worker; data-parallel training is for "
                      + " and ".join(training_pb2.Task.Name(t) for t in DATA_PARALLEL_TASKS) + " fine-tune jobs")


def job_dataset(req: Any, store: Store, layout: int) -> tuple[datasets_pb2.Dataset, str]:
    """(dataset, its directory): NOT_FOUND for an unknown id, INVALID_ARGUMENT for another layout."""
    found = store.get_dataset(req.dataset_id) if req.dataset_id else None
    if found is None:
        raise not_found(f"dataset {req.dataset_id!r} not found" if req.dataset_id else "dataset_id is required")
    dataset, dataset_path = found
    if dataset.layout != layout:
        raise invalid(f"dataset {dataset.id} is {datasets_pb2.DatasetLayout.Name(dataset.layout)}; task "
                      f"{training_pb2.Task.Name(req.task)} needs a {datasets_pb2.DatasetLayout.Name(layout)} dataset")
    return dataset, dataset_path


def in_ranges(msg: Any, ranges: Mapping[str, tuple[float, float]], where: str,
              names: Iterable[str] | None = None) -> dict[str, Any]:
    """The fields of msg that are set, among names (default: every field in ranges), each checked against its
    [low, high] range; INVALID_ARGUMENT names the first one outside it."""
    values: dict[str, Any] = {}
    for name in ranges if names is None else names:
        if msg.HasField(name):
            low, high = ranges[name]
            value = getattr(msg, name)
            if not low <= value <= high:
                raise invalid(f"{where}.{name}={value} is outside [{low:g}, {high:g}]")
            values[name] = value
    return values


EARLY_STOPPING_METRICS = ("valid_loss", "accuracy")


def early_stopping_fields(es: training_pb2.EarlyStopping) -> dict[str, Any]:
    """The engine config's early-stopping fields (image and text jobs alike); none when no metric is set."""
    if not es.metric:
        return {}
    if es.metric not in EARLY_STOPPING_METRICS:
        raise invalid(f"early_stopping.metric must be one of {', '.join(EARLY_STOPPING_METRICS)}")
    if es.patience < 1 or es.min_delta < 0:
        raise invalid("early_stopping needs patience >= 1 and min_delta >= 0")
    return {"early_stopping_metric": es.metric, "early_stopping_patience": es.patience,
            "early_stopping_min_delta": es.min_delta}


def stored_base(store: Store, ref: Any) -> tuple[Any, str]:
    """(model, path) of the stored model a job starts from (base.stored_model); NOT_FOUND when there is none."""
    found = store.get_model(ref.name, ref.version)
    if found is None:
        raise not_found(f"base model {ref.name}/{ref.version or 'latest'} not found")
    return found
