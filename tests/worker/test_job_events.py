"""The job entrypoints against a fake engine: they call the engine with the spec's own config and image limit,
and stream typed events (Started first, Batch throttled, then Succeeded with the engine's result, or Failed)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from fineserve_common.configs import TabularConfig
from fineserve_common.events import Batch, Epoch, Failed, JobResult, Log, LrFinderResult, Started, Succeeded
from fineserve_common.spec import FIND_LR, FINE_TUNE, JobSpec, LrRange
from worker.jobs import run_find_lr, run_fine_tune

SPEC = JobSpec(FINE_TUNE, "tabular", TabularConfig(target="y"), "/data/ds", "/staging/job", max_image_pixels=1000)


class FakeEngine:
    """worker.engine's job entry points (the whole module replaced: the jobs need nothing else of it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.pixel_limits: list[int | None] = []
        module = types.ModuleType("worker.engine")
        module.__dict__.update(EngineError=type("EngineError", (Exception,), {}), fine_tune=self.fine_tune,
                               find_lr=self.find_lr, set_pixel_limit=self.pixel_limits.append)
        monkeypatch.setitem(sys.modules, "worker.engine", module)

    def fine_tune(self, cfg: Any, dataset_dir: str, out_dir: str, *, on_event: Callable[[Any], None],
                  should_stop: Callable[[], bool]) -> JobResult:
        self.calls.append(("fine_tune", (cfg, dataset_dir, out_dir), {}))
        on_event(Log("training"))
        for batch in range(1, 101):  # a hundred quick batches: only the last goes through the throttle
            on_event(Batch("stage-1", 1, 1, batch, 100, loss=1.0))
        on_event(Epoch("stage-1", 1, 1, {"valid_loss": 0.5}))
        return JobResult(metrics={"valid_loss": 0.5}, card={"task": "tabular"}, epochs_trained=1)

    def find_lr(self, cfg: Any, dataset_dir: str, **kwargs: Any) -> LrFinderResult:
        self.calls.append(("find_lr", (cfg, dataset_dir), kwargs))
        raise ValueError("no rows")


def test_a_fine_tune_streams_typed_events(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine(monkeypatch)
    events = list(run_fine_tune(SPEC))
    assert isinstance(events[0], Started) and isinstance(events[1], Log)
    assert [ev.batch for ev in events if isinstance(ev, Batch)][-1] == 100
    assert sum(isinstance(ev, Batch) for ev in events) < 100, "throttled"
    assert isinstance(events[-2], Epoch) and events[-1] == Succeeded(
        JobResult(metrics={"valid_loss": 0.5}, card={"task": "tabular"}, epochs_trained=1))
    assert engine.calls == [("fine_tune", (SPEC.config, "/data/ds", "/staging/job"), {})]
    assert engine.pixel_limits == [1000]


def test_a_range_test_sweeps_the_specs_range_and_reports_a_bad_config(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine(monkeypatch)
    spec = JobSpec(FIND_LR, "tabular", SPEC.config, "/data/ds", lr_range=LrRange(1e-6, 1.0, 50, 2))
    *_, outcome = run_find_lr(spec)
    assert outcome == Failed("invalid configuration: no rows")
    (_, _, kwargs), = engine.calls
    assert {k: kwargs[k] for k in ("start_lr", "end_lr", "num_batches", "freeze_to")} == {
        "start_lr": 1e-6, "end_lr": 1.0, "num_batches": 50, "freeze_to": 2}
