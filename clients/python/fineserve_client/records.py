"""The service's records as typed Python values: :class:`Job`, :class:`Dataset` and :class:`Model`.

Each is a frozen dataclass with the fields people read, as plain Python (enums as ``IntEnum`` members that
print their name and still equal the protobuf numbers, timestamps as ``datetime``, maps as ``dict``), and the
message itself as ``.raw``. Any other field of the message reads through (``job.request.lr``,
``job.result.lr_finder``, ``dataset.summary``), so code written against the messages keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum
from typing import Any

from fineserve.v1 import datasets_pb2, models_pb2, training_pb2

__all__ = ["Dataset", "DatasetLayout", "Job", "JobState", "Model", "Task"]


def _int_enum(name: str, proto_enum: Any) -> type[IntEnum]:
    return IntEnum(name, {n: proto_enum.Value(n) for n in proto_enum.keys()}, module=__name__)  # noqa: SIM118


JobState = _int_enum("JobState", training_pb2.JobState)
"""QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED (equal to ``training_pb2.QUEUED`` etc.)."""
Task = _int_enum("Task", training_pb2.Task)
DatasetLayout = _int_enum("DatasetLayout", datasets_pb2.DatasetLayout)


def _time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=timezone.utc) if message.HasField(name) else None  # noqa: UP017


def _enum(enum: type[IntEnum], value: int) -> IntEnum | int:
    """The member, or the bare number when this SDK predates it (a newer server)."""
    try:
        return enum(value)
    except ValueError:
        return value


class _Record:
    """Reads the fields the dataclass does not carry from ``raw``."""

    raw: Any

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "raw":
            raise AttributeError(name)
        return getattr(self.raw, name)


@dataclass(frozen=True)
class Job(_Record):
    """A fine-tune or LR range test job."""

    id: str
    state: JobState  # type: ignore[valid-type]
    task: Task  # type: ignore[valid-type]
    kind: str
    """``"fine_tune"`` or ``"find_lr"``."""
    model_name: str
    """The model a fine-tune publishes (``""`` for an LR range test)."""
    dataset_id: str
    error: str
    """Why the job failed or was cancelled."""
    model: str | None
    """``"name/version"`` of the model a successful fine-tune wrote."""
    metrics: dict[str, float]
    """Final validation metrics (empty until the job succeeds)."""
    attempts: int
    queue_position: int
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    raw: training_pb2.Job = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: training_pb2.Job) -> Job:
        request = m.request if m.HasField("request") else m.lr_request
        ref = m.result.model
        return cls(
            id=m.id, state=_enum(JobState, m.state), task=_enum(Task, m.task), kind=m.kind,
            model_name=m.request.model_name, dataset_id=request.dataset_id, error=m.error,
            model=f"{ref.name}/{ref.version}" if ref.name else None, metrics=dict(m.result.metrics),
            attempts=m.attempts, queue_position=m.queue_position, created=_time(m, "created_at"),
            started=_time(m, "started_at"), finished=_time(m, "finished_at"), raw=m,
        )

    @property
    def done(self) -> bool:
        """SUCCEEDED, FAILED or CANCELLED."""
        return self.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Dataset(_Record):
    """An uploaded or registered data set."""

    id: str
    name: str
    layout: DatasetLayout  # type: ignore[valid-type]
    source: str
    """``"upload"``, ``"registered"`` (in place, under an allowed root) or ``"fetched"`` (copied from a URL)."""
    classes: list[str]
    train_items: int
    valid_items: int
    size_bytes: int
    file_count: int
    created: datetime | None
    raw: datasets_pb2.Dataset = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: datasets_pb2.Dataset) -> Dataset:
        s = m.summary
        return cls(
            id=m.id, name=m.name, layout=_enum(DatasetLayout, m.layout), source=m.source, classes=list(s.classes),
            train_items=s.train_items, valid_items=s.valid_items, size_bytes=m.size_bytes, file_count=m.file_count,
            created=_time(m, "created_at"), raw=m,
        )


@dataclass(frozen=True)
class Model(_Record):
    """One stored model version."""

    name: str
    version: int
    task: Task  # type: ignore[valid-type]
    arch: str
    classes: list[str]
    metrics: dict[str, float]
    base: str
    """Where the weights came from, as the worker loaded them."""
    job_id: str
    dataset_id: str
    size_bytes: int
    loaded_replicas: int
    """Serving replicas holding it in memory now (``get_model`` only)."""
    created: datetime | None
    raw: models_pb2.Model = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: models_pb2.Model) -> Model:
        return cls(
            name=m.ref.name, version=m.ref.version, task=_enum(Task, m.task), arch=m.arch, classes=list(m.classes),
            metrics=dict(m.metrics), base=m.base, job_id=m.job_id, dataset_id=m.dataset_id, size_bytes=m.size_bytes,
            loaded_replicas=m.loaded_replicas, created=_time(m, "created_at"), raw=m,
        )

