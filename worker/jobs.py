"""Job entrypoints as Ray streaming generators: they yield the job's typed events (fineserve_common.events) as
they happen.

The engine runs in a thread so that the generator can keep yielding while it trains; Ray's cancellation
(KeyboardInterrupt in the generator) is turned into the engine's should_stop flag, so a cancelled job stops
at the next batch boundary. The first event (Started) names the worker process, so operators (and the chaos
tests) can find it. A Heartbeat goes out whenever nothing else has for spec.heartbeat_s: it renews the job's
lease with the job manager, which treats a silent worker as a lost one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fineserve_common.events import Batch, Event, Failed, Heartbeat, JobResult, Started, Succeeded
from fineserve_common.spec import JobSpec, LrRange

# Batch events are throttled to this interval (the last batch of an epoch always goes through).
BATCH_EVENT_INTERVAL_S = 0.5
# Jobs one Ray worker process runs before Ray replaces it with a fresh one (the job tasks' max_calls). After each
# job release_memory gives back what it can find (benchmarks/worker_memory.py: a reused worker then grows about
# 5 MB a job instead of 70-180 MB); recycling bounds whatever it cannot (caches in libraries, fragmentation),
# at the cost of one torch import per this many jobs.
JOBS_PER_WORKER = 20

_TORCH_IMPORT = threading.Lock()


@dataclass(frozen=True)
class PlacementGroupHeld:
    """Not a job event, bookkeeping: a data-parallel run's workers hold this Ray placement group, which the job
    manager frees if it has to kill the run (worker/data_parallel.py, release_placement_group)."""

    group: Any


Message = Event | PlacementGroupHeld
"""What a job's generator yields."""
OnEvent = Callable[[Message], None]
Work = Callable[[OnEvent, Callable[[], bool]], JobResult]
"""work(on_event, should_stop) -> the job's result: the engine's call, run in the job's thread."""


class WorkerLost(RuntimeError):
    """A process the job ran on (a data-parallel training worker) died: the job manager resumes the job from its
    last checkpoint, as when the generator's own worker dies."""


def started() -> Started:
    """The event that moves a job to RUNNING; it names this process, so operators (and chaos tests) can find it."""
    return Started(pid=os.getpid(), host=socket.gethostname())


def _task_threads() -> int:
    """Torch threads for this job: the CPUs Ray gave its task (at least 1). Ray reuses a worker process across
    tasks and sets OMP_NUM_THREADS for each, but torch reads that once, at import, so a process whose first task
    held no CPU (a data-parallel job's generator) would run every later job there on one thread. Outside Ray
    (scripts, tests) torch is left as it is."""
    import ray
    import torch

    if not ray.is_initialized():
        return torch.get_num_threads()
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)))


def _import_torch() -> None:
    """Import torch, torch._dynamo and the engine in a thread of their own, one job at a time.

    An import cut off half-way leaves modules half-initialised in the process, and every later job on that
    reused worker fails at `import torch`. Ray cancels a running task with KeyboardInterrupt in its main thread,
    so there the cancel can only cut off the wait; the import runs to its end. torch imports torch._dynamo (and
    torch._inductor, which imports it back) lazily, at the first optimiser: two threads entering that cycle at
    once leave it half-initialised too, hence the lock, held by the importing thread itself.
    """

    def run() -> None:
        with _TORCH_IMPORT:
            import torch._dynamo  # noqa: F401

            import worker.engine  # noqa: F401

    thread = threading.Thread(target=run, name="import-torch", daemon=True)
    thread.start()
    thread.join()


def release_memory() -> None:
    """Give back what a finished job leaves in its reused worker process: objects only a collection frees (the
    model, optimiser and data in reference cycles), CUDA blocks torch's caching allocator keeps, and the free
    pages glibc keeps in the arenas of the job's threads (each job trains in a new thread, and glibc returns a
    thread arena's free memory to the system only when asked: this is most of a reused worker's growth)."""
    import torch

    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator returns memory its own way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def stream_work(work: Work, heartbeat_s: float, announce: bool = True) -> Iterator[Message]:
    """Run work(on_event, should_stop) in a thread; yield its events, then Succeeded or Failed (or raise the
    WorkerLost it raised, so that Ray reports the job's task as failed rather than the job as failed).
    announce=False: work sends started() itself, once it holds its resources (a data-parallel job's generator
    starts before its workers have been scheduled)."""
    _import_torch()
    import torch

    torch.set_num_threads(_task_threads())

    from worker.engine import EngineError

    if announce:
        yield started()
    events: queue.Queue[Message] = queue.Queue()
    stop = threading.Event()
    outcome: list[Succeeded | Failed | WorkerLost] = []

    def target() -> None:
        try:
            outcome.append(Succeeded(work(events.put, stop.is_set)))
        except WorkerLost as e:
            outcome.append(e)
        except EngineError as e:
            outcome.append(Failed(str(e), cancelled=stop.is_set()))
        except ValueError as e:
            outcome.append(Failed(f"invalid configuration: {e}"))
        except Exception as e:
            outcome.append(Failed(f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"))

    thread = threading.Thread(target=target, name="engine", daemon=True)
    thread.start()
    last_batch = last_sent = time.monotonic()
    try:
        while thread.is_alive() or not events.empty():
            try:
                ev = events.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - last_sent >= heartbeat_s:
                    last_sent = time.monotonic()
                    yield Heartbeat()
                continue
            if isinstance(ev, Batch) and ev.batch < ev.batches:
                if time.monotonic() - last_batch < BATCH_EVENT_INTERVAL_S:
                    continue
                last_batch = time.monotonic()
            last_sent = time.monotonic()
            yield ev
    except BaseException:
        stop.set()
        thread.join(timeout=60)
        release_memory()
        raise
    thread.join()
    release_memory()
    (result,) = outcome
    if isinstance(result, WorkerLost):
        raise result
    yield result


def run_fine_tune(spec: JobSpec) -> Iterator[Message]:
    """A fine-tune of any task, under the server's image limit; a checkpoint in spec.out_dir is resumed."""

    def work(on_event: OnEvent, should_stop: Callable[[], bool]) -> JobResult:
        from worker.engine import fine_tune, set_pixel_limit

        set_pixel_limit(spec.max_image_pixels)
        return fine_tune(spec.config, spec.dataset_dir, spec.out_dir, on_event=on_event, should_stop=should_stop)

    yield from stream_work(work, spec.heartbeat_s)


def run_find_lr(spec: JobSpec) -> Iterator[Message]:
    """The LR range test over spec.lr_range; its curve is the result's lr_finder."""
    sweep = spec.lr_range or LrRange()

    def work(on_event: OnEvent, should_stop: Callable[[], bool]) -> JobResult:
        from worker.engine import find_lr, set_pixel_limit

        set_pixel_limit(spec.max_image_pixels)
        return JobResult(lr_finder=find_lr(spec.config, spec.dataset_dir, start_lr=sweep.start_lr,
                                           end_lr=sweep.end_lr, num_batches=sweep.num_batches,
                                           freeze_to=sweep.freeze_to, on_event=on_event, should_stop=should_stop))

    yield from stream_work(work, spec.heartbeat_s)
