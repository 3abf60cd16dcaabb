"""The fine-tune job as a Ray streaming generator: it yields the engine's events as they happen.

The engine runs in a thread so that the generator can keep yielding while it trains; Ray's cancellation
(KeyboardInterrupt in the generator) is turned into the engine's should_stop flag, so a cancelled job stops
at the next batch boundary and leaves no half-written artifact behind.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

# Batch events are throttled to this interval (epoch events and the last batch always go through).
BATCH_EVENT_INTERVAL_S = 0.5


def run_fine_tune(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """spec: {"config": FineTuneConfig dict, "dataset_dir": str, "out_dir": str}.

    Yields {"type": "started"}, engine events, then {"type": "succeeded", "metrics", "card"} or
    {"type": "failed", "reason"}.
    """
    from worker.engine import EngineError, FineTuneConfig, fine_tune

    yield {"type": "started"}
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def train() -> None:
        try:
            cfg = FineTuneConfig.from_dict(spec["config"])
            result = fine_tune(cfg, spec["dataset_dir"], spec["out_dir"], on_event=events.put,
                               should_stop=stop.is_set)
            outcome.update(type="succeeded", metrics=result["metrics"], card=result["card"])
        except EngineError as e:
            outcome.update(type="failed", reason=str(e), cancelled=stop.is_set())
        except ValueError as e:
            outcome.update(type="failed", reason=f"invalid configuration: {e}")
        except Exception as e:
            outcome.update(type="failed", reason=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")

    thread = threading.Thread(target=train, name="fine-tune", daemon=True)
    thread.start()
    last_batch = 0.0
    try:
        while thread.is_alive() or not events.empty():
            try:
                ev = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if ev["type"] == "batch" and ev["batch"] < ev["batches"]:
                if time.monotonic() - last_batch < BATCH_EVENT_INTERVAL_S:
                    continue
                last_batch = time.monotonic()
            yield ev
    except BaseException:
        stop.set()
        thread.join(timeout=60)
        raise
    thread.join()
    yield outcome
