"""Job entrypoints as Ray streaming generators: they yield the engine's events as they happen.

The engine runs in a thread so that the generator can keep yielding while it trains; Ray's cancellation
(KeyboardInterrupt in the generator) is turned into the engine's should_stop flag, so a cancelled job stops
at the next batch boundary. The first event names the worker process, so operators (and the chaos tests)
can find it. A heartbeat goes out whenever nothing else has for spec["heartbeat_s"]: it renews the job's lease
with the job manager, which treats a silent worker as a lost one.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

# Batch events are throttled to this interval (the last batch of an epoch always goes through).
BATCH_EVENT_INTERVAL_S = 0.5
# For a spec without "heartbeat_s" (one built by hand, outside the job manager).
DEFAULT_HEARTBEAT_S = 30.0

Event = dict[str, Any]
_TORCH_IMPORT = threading.Lock()
# What a fine-tune job's succeeded event carries from the engine's result.
FINE_TUNE_RESULT_KEYS = ("metrics", "card", "lr_finder", "chosen_lr", "epochs_trained")


class WorkerLost(RuntimeError):
    """A process the job ran on (a data-parallel training worker) died: the job manager resumes the job from its
    last checkpoint, as when the generator's own worker dies."""


def started_event() -> Event:
    """The event that moves a job to RUNNING; it names this process, so operators (and chaos tests) can find it."""
    return {"type": "started", "pid": os.getpid(), "host": socket.gethostname()}


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


def stream_work(work: Callable[[Callable[[Event], None], Callable[[], bool]], Event],
                heartbeat_s: float, announce: bool = True) -> Iterator[Event]:
    """Run work(on_event, should_stop) in a thread; yield its events, then its outcome event (or raise the
    WorkerLost it raised, so that Ray reports the job's task as failed rather than the job as failed).
    announce=False: work sends started_event() itself, once it holds its resources (a data-parallel job's
    generator starts before its workers have been scheduled)."""
    _import_torch()
    import torch

    torch.set_num_threads(_task_threads())

    from worker.engine import EngineError

    if announce:
        yield started_event()
    events: queue.Queue[Event] = queue.Queue()
    stop = threading.Event()
    outcome: Event = {}

    def target() -> None:
        try:
            outcome.update(type="succeeded", **work(events.put, stop.is_set))
        except WorkerLost as e:
            outcome.update(lost=e)
        except EngineError as e:
            outcome.update(type="failed", reason=str(e), cancelled=stop.is_set())
        except ValueError as e:
            outcome.update(type="failed", reason=f"invalid configuration: {e}")
        except Exception as e:
            outcome.update(type="failed", reason=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")

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
                    yield {"type": "heartbeat"}
                continue
            if ev["type"] == "batch" and ev["batch"] < ev["batches"]:
                if time.monotonic() - last_batch < BATCH_EVENT_INTERVAL_S:
                    continue
                last_batch = time.monotonic()
            last_sent = time.monotonic()
            yield ev
    except BaseException:
        stop.set()
        thread.join(timeout=60)
        raise
    thread.join()
    if "lost" in outcome:
        raise outcome["lost"]
    yield outcome


def run_fine_tune(spec: dict[str, Any]) -> Iterator[Event]:
    """spec: {"config": FineTuneConfig dict, "dataset_dir", "out_dir"}, or with "embedding_task" a CollabConfig /
    TabularConfig dict, or with "text_task" ("language_model", "text_classification") a TextConfig dict. A
    checkpoint in out_dir is resumed."""

    def work(on_event: Callable[[Event], None], should_stop: Callable[[], bool]) -> Event:
        from worker.engine import FineTuneConfig, fine_tune, train_embedding_task
        from worker.engine.images import set_pixel_limit
        from worker.engine.text_training import run_text_job

        set_pixel_limit(spec.get("max_image_pixels"))  # the server's, sent with the job
        if "embedding_task" in spec:  # collaborative filtering, tabular
            result = train_embedding_task(spec["embedding_task"], spec["config"], spec["dataset_dir"],
                                          spec["out_dir"], on_event=on_event, should_stop=should_stop)
        elif "text_task" in spec:
            result = run_text_job(spec, on_event, should_stop)
        else:
            result = fine_tune(FineTuneConfig.from_dict(spec["config"]), spec["dataset_dir"], spec["out_dir"],
                               on_event=on_event, should_stop=should_stop)
        return {k: result[k] for k in FINE_TUNE_RESULT_KEYS if k in result}

    yield from stream_work(work, spec.get("heartbeat_s", DEFAULT_HEARTBEAT_S))


def run_find_lr(spec: dict[str, Any]) -> Iterator[Event]:
    """spec: {"config", "dataset_dir", "range": {start_lr, end_lr, num_batches, freeze_to}}: the config a
    FineTuneConfig dict, or with "text_task" a TextConfig dict."""

    def work(on_event: Callable[[Event], None], should_stop: Callable[[], bool]) -> Event:
        from worker.engine import FineTuneConfig, find_lr
        from worker.engine.images import set_pixel_limit
        from worker.engine.text_training import find_text_lr, spec_config

        set_pixel_limit(spec.get("max_image_pixels"))
        if "text_task" in spec:
            result = find_text_lr(spec_config(spec), spec["dataset_dir"], **spec["range"], on_event=on_event,
                                  should_stop=should_stop)
        else:
            result = find_lr(FineTuneConfig.from_dict(spec["config"]), spec["dataset_dir"], **spec["range"],
                             on_event=on_event, should_stop=should_stop)
        return {"lr_finder": result}

    yield from stream_work(work, spec.get("heartbeat_s", DEFAULT_HEARTBEAT_S))
