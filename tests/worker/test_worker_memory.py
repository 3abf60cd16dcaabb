"""A Ray worker process runs many jobs over its life, so what one job leaves behind must not pile up: each job's
objects are freed when it ends (even those in reference cycles, and even with the collector idle), and Ray
replaces a worker after JOBS_PER_WORKER jobs (benchmarks/worker_memory.py measures the memory itself)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from control.ray_jobs import job_entrypoints
from fineserve_common.events import JobResult, Succeeded
from worker.jobs import JOBS_PER_WORKER, stream_work


class Model:
    """Stands for a job's model, optimiser and data: large, and in a reference cycle (as torch modules are)."""

    def __init__(self) -> None:
        self.me = self
        self.weights = bytearray(1 << 20)


@pytest.fixture
def collector_idle() -> Iterator[None]:
    """No automatic collection during the test: only what the job's end frees explicitly is freed."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_a_finished_job_leaves_nothing_in_its_worker(collector_idle: None) -> None:
    kept: list[weakref.ref[Model]] = []

    def work(on_event: Callable[[Any], None], should_stop: Callable[[], bool]) -> JobResult:
        model = Model()
        kept.append(weakref.ref(model))
        return JobResult(metrics={"size": float(len(model.weights))})

    events = list(stream_work(work, heartbeat_s=30.0))
    assert isinstance(events[-1], Succeeded) and events[-1].result.metrics["size"] == 1 << 20
    assert kept[0]() is None, "the job's model outlived the job"


def test_job_tasks_run_in_workers_that_ray_replaces_after_a_bounded_number_of_jobs() -> None:
    tasks = job_entrypoints()
    assert set(tasks) == {"fine_tune", "find_lr", "data_parallel"}
    assert 1 <= JOBS_PER_WORKER <= 100
    assert {kind: f._default_options.get("max_calls") for kind, f in tasks.items()} == dict.fromkeys(
        tasks, JOBS_PER_WORKER)
