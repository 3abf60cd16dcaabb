"""Data-parallel fine-tune jobs: the engine's fine_tune on N Ray Train workers (TorchTrainer; DDP over gloo on CPU,
NCCL on GPU), driven from a streaming-generator task that reports the job's events like a one-worker job.

The generator holds no CPU or GPU itself. It runs TorchTrainer.fit() in a task of its own (which owns Ray Train's
controller, which owns the workers) and relays what the ranks put into a JobChannel actor: each rank's hello (a
Log), rank 0's placement group, events, and last rank 0's JobResult.
The job counts as started (RUNNING) once rank 0 reports in, so it stays QUEUED while Ray Train waits for
resources. Cancelling kills the fit task, and with it the controller and every worker. A training worker that
dies (or a rank whose peer died mid-collective) ends the run with WorkerLost, which the job manager resumes from
rank 0's last checkpoint like any lost worker.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ray

from fineserve_common.events import JobResult, Log
from fineserve_common.spec import JobSpec
from worker.jobs import JOBS_PER_WORKER, Message, OnEvent, PlacementGroupHeld, WorkerLost, started, stream_work

# How often the generator drains the channel and checks for cancellation.
POLL_INTERVAL_S = 0.25
ChannelItem = Message | JobResult


@dataclass(frozen=True)
class Placement:
    """What Ray Train's workers ask for, each."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float


@ray.remote(num_cpus=0)
class JobChannel:
    """What the ranks tell the generator: events (rank 0's, and each rank's hello), then rank 0's result."""

    def __init__(self) -> None:
        self._items: list[ChannelItem] = []

    def put(self, item: ChannelItem) -> None:
        self._items.append(item)

    def take(self) -> list[ChannelItem]:
        items, self._items = self._items, []
        return items


def _ignore(_: Message) -> None:
    """Ranks other than 0 report nothing: rank 0 speaks for the run."""


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker (rank): Ray Train has set up the process group; fine_tune shards by it."""
    import ray.train
    import ray.train.torch

    from worker.engine import fine_tune, set_pixel_limit

    spec: JobSpec = config["spec"]
    channel = config["channel"]
    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    channel.put.remote(Log(f"data-parallel worker rank {rank} of {size}: pid {os.getpid()} on {socket.gethostname()}"))
    if rank == 0:  # removed if the run is killed (see release_placement_group)
        channel.put.remote(PlacementGroupHeld(ray.util.get_current_placement_group()))
    set_pixel_limit(spec.max_image_pixels)
    cfg = spec.config
    if cfg.device == "auto":
        cfg = dataclasses.replace(cfg, device=str(ray.train.torch.get_device()))
    main = rank == 0
    result = fine_tune(cfg, spec.dataset_dir, spec.out_dir, on_event=channel.put.remote if main else _ignore)
    if main:  # waited for: the channel has every event before the run counts as finished
        ray.get(channel.put.remote(result))


def _lost_or_raise(error: Exception) -> None:
    """Raise what the job's failure means: WorkerLost when a rank's process died or hung (or a rank lost a peer in
    a collective), otherwise rank 0's (or the first rank's) own exception, which the stream reports as failed."""
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError, WorkerHealthCheckTimeoutError
    from torch.distributed import DistError

    failures: dict[int, Exception] = getattr(error, "worker_failures", None) or {}
    if not failures:
        raise error
    # Ray Train wraps a rank's own exception with its traceback text; the original is what the engine raised.
    causes = {rank: getattr(f, "_base_exc", f) for rank, f in sorted(failures.items())}
    for rank, cause in causes.items():
        if isinstance(cause, WorkerHealthCheckFailedError | WorkerHealthCheckTimeoutError | DistError):
            raise WorkerLost(f"data-parallel worker rank {rank} was lost: {cause}") from error
    raise next(iter(causes.values())) from error


def release_placement_group(group: Any) -> None:
    """Remove the workers' placement group if it outlived the run. Ray Train removes it when a run ends, but a
    killed run (cancelled: its controller dies with the fit task) leaves that to its PlacementGroupCleaner, which
    needs Ray's State API (the dashboard), absent from the embedded default: the group would hold its CPUs until
    the service stops, and every later job would wait for them. The generator calls this when its run ends; the
    job manager calls it too after killing a generator that could not (its lease ran out, or it died)."""
    from ray.util import placement_group_table, remove_placement_group

    if group is not None and placement_group_table(group).get("state") != "REMOVED":
        remove_placement_group(group)


@ray.remote(num_cpus=0, max_retries=0, max_calls=JOBS_PER_WORKER)
def _fit(spec: JobSpec, placement: Placement, channel: Any) -> None:
    """TorchTrainer.fit() in a process of its own: killing it takes down the controller and workers it owns."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    gpus = placement.gpus_per_worker
    storage = tempfile.mkdtemp(prefix="fineserve-ray-train-")
    try:
        TorchTrainer(
            _train_worker, train_loop_config={"spec": spec, "channel": channel},
            scaling_config=ScalingConfig(num_workers=placement.workers, use_gpu=gpus > 0,
                                         resources_per_worker={"CPU": placement.cpus_per_worker}
                                         | ({"GPU": gpus} if gpus > 0 else {})),
            # No Ray Train retries: the job manager resumes a lost job itself, so the restart is a job event.
            run_config=RunConfig(name="fine-tune", storage_path=storage, failure_config=FailureConfig(max_failures=0)),
        ).fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def run_data_parallel_fine_tune(spec: JobSpec, cpus_per_worker: float, gpus_per_worker: float) -> Iterator[Message]:
    """run_fine_tune on spec.workers (>= 2) Ray Train workers, each holding cpus_per_worker and gpus_per_worker."""
    placement = Placement(spec.workers, cpus_per_worker, gpus_per_worker)

    def work(on_event: OnEvent, should_stop: Callable[[], bool]) -> JobResult:
        from worker.engine import Cancelled

        channel = JobChannel.remote()
        fit = _fit.remote(spec, placement, channel)
        on_event(Log(f"asking Ray Train for {placement.workers} data-parallel workers with {cpus_per_worker:g} CPU "
                     f"and {gpus_per_worker:g} GPU each; the job runs once they are all up"))
        announced = False
        result: JobResult | None = None
        group = None
        try:
            while True:
                done, _ = ray.wait([fit], timeout=POLL_INTERVAL_S)
                for item in ray.get(channel.take.remote()):
                    if not announced:
                        on_event(started())
                        announced = True
                    if isinstance(item, JobResult):
                        result = item
                        continue
                    if isinstance(item, PlacementGroupHeld):
                        group = item.group  # forwarded too: the job manager frees it if this task is killed
                    on_event(item)
                if done:
                    break
                if should_stop():
                    ray.cancel(fit, force=True)
                    raise Cancelled("cancelled: the data-parallel workers were stopped")
            try:
                ray.get(fit)
            except ray.exceptions.RayTaskError as e:  # fit() raised: what did the ranks do?
                _lost_or_raise(e.cause)
            except ray.exceptions.RayError as e:  # the fit task's own process or node died
                raise WorkerLost(f"the data-parallel run's driver task was lost: {e}") from e
        finally:
            ray.kill(channel)
            release_placement_group(group)
        if result is None:
            raise RuntimeError("the data-parallel run ended without rank 0's result")
        return result

    yield from stream_work(work, spec.heartbeat_s, announce=False)
