"""The front door's job, model and dataset calls wait for the coordinator off the event loop, so inference calls
(and Ray Serve's router, which runs on that loop) keep moving while one of them waits; so does an inference
call whose model lookup is not cached."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, models_pb2, training_pb2
from service.api.datasets import DatasetsServicer
from service.api.inference import InferenceServicer
from service.api.models import ModelsServicer
from service.api.training import TrainingServicer
from service.config import parse_settings
from service.tenancy import set_tenant

HELD_S = 5.0


class SlowStore:
    """Every call blocks until released (at most HELD_S), as a coordinator round trip blocks its caller."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []

    def for_tenant(self, tenant: str) -> SlowStore:
        return self

    def cached_model(self, name: str, version: int, *, tenant: str) -> None:
        """Nothing cached: every inference lookup is a coordinator call."""

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(method)
            self.release.wait(HELD_S)
            return None if method.startswith("get_") else []

        return call


class Context:
    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: Any, message: str) -> None:
        raise AssertionError(f"aborted: {code} {message}")


def _calls(store: SlowStore, tmp_path: Path) -> dict[str, Callable[[], Coroutine[Any, Any, Any]]]:
    training = TrainingServicer(store, None, None, ())  # type: ignore[arg-type]
    models = ModelsServicer(store, None, None)  # type: ignore[arg-type]
    settings = parse_settings(["--data-dir", str(tmp_path)])
    datasets = DatasetsServicer(store, settings)  # type: ignore[arg-type]
    inference = InferenceServicer(store, None, settings.limits, str)  # type: ignore[arg-type]
    model = common_pb2.ModelRef(name="m")
    return {
        "ListJobs": lambda: training.ListJobs(training_pb2.ListJobsRequest(), Context()),
        "GetJob": lambda: training.GetJob(training_pb2.GetJobRequest(id="job-1"), Context()),
        "ListModels": lambda: models.ListModels(models_pb2.ListModelsRequest(), Context()),
        "GetModel": lambda: models.GetModel(models_pb2.GetModelRequest(ref=model), Context()),
        "Classify": lambda: inference.Classify(inference_pb2.ClassifyRequest(model=model), Context()),
        "ListDatasets": lambda: datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), Context()),
    }


@pytest.mark.parametrize("name", ["ListJobs", "GetJob", "ListModels", "GetModel", "ListDatasets", "Classify"])
def test_a_waiting_coordinator_call_leaves_the_event_loop_free(name: str, tmp_path: Path) -> None:
    store = SlowStore()

    async def main() -> None:
        set_tenant("default")
        call = asyncio.create_task(_calls(store, tmp_path)[name]())
        start = time.monotonic()
        await asyncio.sleep(0.2)  # on a blocked loop this returns only when the store call ends (HELD_S)
        assert time.monotonic() - start < HELD_S / 2, f"{name} held the event loop while the coordinator answered"
        assert store.calls and not call.done()
        store.release.set()
        try:
            await call
        except AssertionError as e:  # GetJob / GetModel / Classify of nothing: NOT_FOUND, which is fine here
            assert "NOT_FOUND" in str(e)

    asyncio.run(main())
