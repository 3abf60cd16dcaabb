"""Data-parallel fine-tune jobs: the engine's fine_tune on N Ray Train workers (TorchTrainer; DDP over gloo on CPU,
NCCL on GPU), driven from a streaming-generator task that reports the job's events like a one-worker job.

The generator holds no CPU or GPU itself: it only waits on Ray Train's controller and relays what rank 0 puts into
a JobChannel actor (events, then the result). Cancellation goes the other way: the generator sets the channel's
stop flag, rank 0 polls it and raises Cancelled, and Ray Train tears down the other ranks. A training worker that
dies (or a rank whose peer died mid-collective) ends the run with WorkerLost, which the job manager resumes from
rank 0's last checkpoint like any lost worker.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ray

from worker.jobs import DEFAULT_HEARTBEAT_S, FINE_TUNE_RESULT_KEYS, Event, WorkerLost, stream_work

# How often rank 0 asks the channel whether the job was cancelled, and the generator drains it.
POLL_INTERVAL_S = 0.25


@ray.remote(num_cpus=0)
class JobChannel:
    """Events from rank 0 to the generator, and the stop flag from the generator to rank 0."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._stop = False

    def put(self, event: Event) -> None:
        self._events.append(event)

    def take(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def stop(self) -> None:
        self._stop = True

    def stopping(self) -> bool:
        return self._stop


def _polled(channel: Any) -> Callable[[], bool]:
    """should_stop for rank 0: the channel's flag, asked at most every POLL_INTERVAL_S."""
    last, stop = 0.0, False

    def should_stop() -> bool:
        nonlocal last, stop
        if not stop and time.monotonic() - last >= POLL_INTERVAL_S:
            stop, last = ray.get(channel.stopping.remote()), time.monotonic()
        return stop

    return should_stop


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker (rank): Ray Train has set up the process group; fine_tune shards by it."""
    import ray.train
    import ray.train.torch

    from worker.engine import FineTuneConfig, fine_tune
    from worker.engine.train_loop import ignore_event, never_stop

    spec, channel = config["spec"], config["channel"]
    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    channel.put.remote({"type": "log", "message": f"data-parallel worker rank {rank} of {size}: pid {os.getpid()} "
                                                  f"on {socket.gethostname()}"})
    cfg = dict(spec["config"])
    if cfg.get("device", "auto") == "auto":
        cfg["device"] = str(ray.train.torch.get_device())
    main = rank == 0
    result = fine_tune(FineTuneConfig.from_dict(cfg), spec["dataset_dir"], spec["out_dir"],
                       on_event=channel.put.remote if main else ignore_event,
                       should_stop=_polled(channel) if main else never_stop)
    if main:  # waited for: the channel has every event before the run counts as finished
        ray.get(channel.put.remote({"type": "result", **{k: result[k] for k in FINE_TUNE_RESULT_KEYS
                                                          if k in result}}))


def _lost_or_raise(error: Exception) -> None:
    """Raise what the job's failure means: WorkerLost when a rank's process died (or a rank lost a peer in a
    collective), otherwise rank 0's (or the first rank's) own exception, which the stream reports as failed."""
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError
    from torch.distributed import DistError

    failures: dict[int, Exception] = getattr(error, "worker_failures", None) or {}
    if not failures:
        raise error
    # Ray Train wraps a rank's own exception with its traceback text; the original is what the engine raised.
    causes = {rank: getattr(f, "_base_exc", f) for rank, f in sorted(failures.items())}
    for rank, cause in causes.items():
        if isinstance(cause, WorkerHealthCheckFailedError | DistError):
            raise WorkerLost(f"data-parallel worker rank {rank} was lost: {cause}") from error
    raise next(iter(causes.values())) from error


def run_data_parallel_fine_tune(spec: dict[str, Any]) -> Iterator[Event]:
    """spec: run_fine_tune's image spec plus "workers" (>= 2), "cpus_per_worker" and "gpus_per_worker"."""

    def work(on_event: Callable[[Event], None], should_stop: Callable[[], bool]) -> Event:
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        gpus = spec["gpus_per_worker"]
        channel = JobChannel.remote()
        storage = tempfile.mkdtemp(prefix="fineserve-ray-train-")
        trainer = TorchTrainer(
            _train_worker, train_loop_config={"spec": spec, "channel": channel},
            scaling_config=ScalingConfig(num_workers=spec["workers"], use_gpu=gpus > 0,
                                         resources_per_worker={"CPU": spec["cpus_per_worker"]}
                                         | ({"GPU": gpus} if gpus > 0 else {})),
            # No Ray Train retries: the job manager resumes a lost job itself, so the restart is a job event.
            run_config=RunConfig(name="fine-tune", storage_path=storage, failure_config=FailureConfig(max_failures=0)))
        outcome: dict[str, Any] = {}

        def fit() -> None:
            try:
                trainer.fit()
            except Exception as e:
                outcome["error"] = e

        on_event({"type": "log", "message": f"starting {spec['workers']} data-parallel workers (Ray Train), "
                                            f"{spec['cpus_per_worker']:g} CPU and {gpus:g} GPU each"})
        thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
        thread.start()
        result: Event = {}
        try:
            while True:
                alive = thread.is_alive()
                for event in ray.get(channel.take.remote()):
                    if event["type"] == "result":
                        result = event
                    else:
                        on_event(event)
                if not alive:
                    break
                if should_stop():
                    channel.stop.remote()
                thread.join(POLL_INTERVAL_S)
        finally:
            ray.kill(channel)
            shutil.rmtree(storage, ignore_errors=True)
        if "error" in outcome:
            _lost_or_raise(outcome["error"])
        if not result:
            raise RuntimeError("the data-parallel run ended without rank 0's result")
        return {k: v for k, v in result.items() if k != "type"}

    yield from stream_work(work, spec.get("heartbeat_s", DEFAULT_HEARTBEAT_S))
