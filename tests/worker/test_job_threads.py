"""A job's torch threads follow the CPUs Ray gave its task, even in a worker process that Ray reuses from a task
that held none (torch reads OMP_NUM_THREADS only once, when first imported)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray

from fineserve_common.events import JobResult, Succeeded
from worker.jobs import stream_work


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    for attempt in (1, 2):
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as e:  # Ray waits 30 s for its node; a 2-core machine still reaping the last test's
            if attempt == 2 or "timed out during startup" not in str(e):  # processes missed that once here
                raise
            ray.shutdown()
    yield
    ray.shutdown()


@ray.remote
def _no_cpu_task() -> tuple[int, int]:
    import os

    import torch

    return os.getpid(), torch.get_num_threads()


@ray.remote
def _job() -> dict[str, float]:
    """A job through stream_work, reporting its process and the torch threads its engine thread sees."""
    import os

    import torch

    def work(on_event: Any, should_stop: Any) -> JobResult:
        return JobResult(metrics={"pid": os.getpid(), "threads": torch.get_num_threads()})

    (outcome,) = [ev for ev in stream_work(work, heartbeat_s=30.0) if isinstance(ev, Succeeded)]
    return outcome.result.metrics


def test_a_reused_worker_runs_a_job_on_the_cpus_its_task_holds(local_ray: None) -> None:
    pid, threads = ray.get(_no_cpu_task.options(num_cpus=0).remote())
    assert threads == 1, "Ray starts a task without CPUs with OMP_NUM_THREADS=1"
    outcome = ray.get(_job.options(num_cpus=2).remote())
    if outcome["pid"] != pid:
        pytest.fail("Ray did not reuse the worker process: this test cannot show the reuse it is about")
    assert outcome["threads"] == 2
