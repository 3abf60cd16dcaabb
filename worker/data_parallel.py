"""Data-parallel fine-tune jobs: the engine's fine_tune on N Ray Train workers (TorchTrainer; DDP over gloo on CPU,
NCCL on GPU), driven from a streaming-generator task that reports the job's events like a one-worker job.

The generator holds no CPU or GPU itself. It runs TorchTrainer.fit() in a task of its own (which owns Ray Train's
controller, which owns the workers) and relays what rank 0 puts into a JobChannel actor: events, then the result.
The job counts as started (RUNNING) once rank 0 reports in, so it stays QUEUED while Ray Train waits for
resources. Cancelling kills the fit task, and with it the controller and every worker. A training worker that
dies (or a rank whose peer died mid-collective) ends the run with WorkerLost, which the job manager resumes from
rank 0's last checkpoint like any lost worker.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import ray

from worker.jobs import DEFAULT_HEARTBEAT_S, FINE_TUNE_RESULT_KEYS, Event, WorkerLost, started_event, stream_work

# How often the generator drains the channel and checks for cancellation.
POLL_INTERVAL_S = 0.25


@ray.remote(num_cpus=0)
class JobChannel:
    """Events from the ranks (rank 0's, and each rank's hello) to the generator."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def put(self, event: Event) -> None:
        self._events.append(event)

    def take(self) -> list[Event]:
        events, self._events = self._events, []
        return events


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker (rank): Ray Train has set up the process group; fine_tune shards by it."""
    import ray.train
    import ray.train.torch

    from worker.engine import FineTuneConfig, fine_tune
    from worker.engine.images import set_pixel_limit
    from worker.engine.train_loop import ignore_event

    spec, channel = config["spec"], config["channel"]
    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    channel.put.remote({"type": "log", "message": f"data-parallel worker rank {rank} of {size}: pid {os.getpid()} "
                                                  f"on {socket.gethostname()}"})
    if rank == 0:  # removed if the run is killed (see release_placement_group)
        channel.put.remote({"type": "placement_group", "group": ray.util.get_current_placement_group()})
    set_pixel_limit(spec.get("max_image_pixels"))
    cfg = dict(spec["config"])
    if cfg.get("device", "auto") == "auto":
        cfg["device"] = str(ray.train.torch.get_device())
    main = rank == 0
    result = fine_tune(FineTuneConfig.from_dict(cfg), spec["dataset_dir"], spec["out_dir"],
                       on_event=channel.put.remote if main else ignore_event)
    if main:  # waited for: the channel has every event before the run counts as finished
        ray.get(channel.put.remote({"type": "result", **{k: result[k] for k in FINE_TUNE_RESULT_KEYS
                                                          if k in result}}))


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


@ray.remote(num_cpus=0, max_retries=0)
def _fit(spec: dict[str, Any], channel: Any) -> None:
    """TorchTrainer.fit() in a process of its own: killing it takes down the controller and workers it owns."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    gpus = spec["gpus_per_worker"]
    storage = tempfile.mkdtemp(prefix="fineserve-ray-train-")
    try:
        TorchTrainer(
            _train_worker, train_loop_config={"spec": spec, "channel": channel},
            scaling_config=ScalingConfig(num_workers=spec["workers"], use_gpu=gpus > 0,
                                         resources_per_worker={"CPU": spec["cpus_per_worker"]}
                                         | ({"GPU": gpus} if gpus > 0 else {})),
            # No Ray Train retries: the job manager resumes a lost job itself, so the restart is a job event.
            run_config=RunConfig(name="fine-tune", storage_path=storage, failure_config=FailureConfig(max_failures=0)),
        ).fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def run_data_parallel_fine_tune(spec: dict[str, Any]) -> Iterator[Event]:
    """spec: run_fine_tune's image spec plus "workers" (>= 2), "cpus_per_worker" and "gpus_per_worker"."""

    def work(on_event: Callable[[Event], None], should_stop: Callable[[], bool]) -> Event:
        from worker.engine import Cancelled

        channel = JobChannel.remote()
        fit = _fit.remote(spec, channel)
        on_event({"type": "log", "message": f"asking Ray Train for {spec['workers']} data-parallel workers with "
                                            f"{spec['cpus_per_worker']:g} CPU and {spec['gpus_per_worker']:g} GPU "
                                            "each; the job runs once they are all up"})
        started = False
        result: Event = {}
        group = None
        try:
            while True:
                done, _ = ray.wait([fit], timeout=POLL_INTERVAL_S)
                for event in ray.get(channel.take.remote()):
                    if not started:
                        on_event(started_event())
                        started = True
                    if event["type"] == "result":
                        result = event
                        continue
                    if event["type"] == "placement_group":
                        group = event["group"]  # forwarded too: the job manager frees it if this task is killed
                    on_event(event)
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
        if not result:
            raise RuntimeError("the data-parallel run ended without rank 0's result")
        return {k: v for k, v in result.items() if k != "type"}

    yield from stream_work(work, spec.get("heartbeat_s", DEFAULT_HEARTBEAT_S), announce=False)
