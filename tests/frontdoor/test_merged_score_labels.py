"""ScoreLabels at the front door: concurrent calls for one model share one replica request (as Classify's do),
each caller getting its own answers in order, its own refusal, its own deadline and the queue's backpressure."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import grpc
import pytest
from PIL import Image

from fineserve.v1 import common_pb2, inference_pb2, models_pb2, training_pb2
from fineserve_common.answers import LabelScores, Refused
from fineserve_common.errors import InvalidArgument
from service.api.inference import InferenceServicer
from service.config import Limits, ServingConfig
from service.tenancy import set_tenant

MODEL = models_pb2.Model(ref=common_pb2.ModelRef(name="tags", version=1), classes=["x", "y"],
                         task=training_pb2.MULTI_LABEL_CLASSIFICATION)


class Store:
    def cached_model(self, name: str, version: int, *, tenant: str) -> tuple[models_pb2.Model, str]:
        return MODEL, "default/tags/1"


class Replicas:
    """The serving handle: each score_labels_calls request is recorded and waits until released; a call whose
    image is shade 0 is refused (as a replica refuses an image it cannot decode), the others answered with the
    caller's threshold and the image's shade as scores."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[tuple[list[bytes], Any]]]] = []
        self.release = asyncio.Event()
        self._model_id = ""

    def options(self, multiplexed_model_id: str, **_: Any) -> Replicas:
        self._model_id = multiplexed_model_id
        return self

    @property
    def score_labels_calls(self) -> Replicas:
        return self

    def remote(self, calls: list[tuple[list[bytes], Any]]) -> Any:
        self.requests.append((self._model_id, calls))
        return self._answer(calls)

    async def _answer(self, calls: list[tuple[list[bytes], Any]]) -> list[Any]:
        await self.release.wait()
        return [Refused.of(InvalidArgument("image 0: cannot decode")) if _shade(images[0]) == 0 else
                [LabelScores([("x", _shade(i) / 255), ("y", threshold or 0.0)], ["x"]) for i in images]
                for images, threshold in calls]


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Context:
    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout

    def time_remaining(self) -> float | None:
        return self.timeout

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), shade).save(buf, format="PNG")
    return buf.getvalue()


def _shade(data: bytes) -> int:
    return Image.open(io.BytesIO(data)).getpixel((0, 0))


def _request(shades: list[int], threshold: float | None = None) -> inference_pb2.ScoreLabelsRequest:
    return inference_pb2.ScoreLabelsRequest(model=MODEL.ref, threshold=threshold, images=[
        common_pb2.Image(name=f"s{s}", data=_png(s)) for s in shades])


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_merged_score_labels_calls_get_their_own_answers_refusals_deadlines_and_backpressure() -> None:
    async def scenario() -> tuple[list[Any], Replicas, Aborted, Aborted]:
        set_tenant("default")
        replicas = Replicas()
        door = InferenceServicer(Store(), replicas, Limits(), str,  # type: ignore[arg-type]
                                 ServingConfig(max_batch_size=32, max_queued_requests=6))
        door._score_labels._in_flight = 1  # one request out, so that the next callers wait together
        first = asyncio.ensure_future(door.ScoreLabels(_request([10]), Context()))
        await _settle()
        calls = [door.ScoreLabels(_request([20, 30], 0.25), Context()), door.ScoreLabels(_request([0]), Context()),
                 door.ScoreLabels(_request([40]), Context())]
        merged = [asyncio.ensure_future(c) for c in calls]
        with pytest.raises(Aborted) as late:  # waits behind the first and leaves at its deadline
            await door.ScoreLabels(_request([50]), Context(timeout=0.05))
        with pytest.raises(Aborted) as full:  # 4 images wait; 3 more are over max_queued_requests=6
            await door.ScoreLabels(_request([60, 60, 60]), Context())
        replicas.release.set()
        return await asyncio.gather(first, *merged, return_exceptions=True), replicas, late.value, full.value

    answers, replicas, late, full = asyncio.run(scenario())
    assert [[t for _, t in calls] for _, calls in replicas.requests] == [[None], [0.25, None, None]]
    assert {model_id for model_id, _ in replicas.requests} == {"default/tags/1"}
    first, pair, refused, last = answers
    assert [(r.name, [round(s.score, 3) for s in r.scores]) for r in pair.results] == [
        ("s20", [round(20 / 255, 3), 0.25]), ("s30", [round(30 / 255, 3), 0.25])]
    assert [r.name for r in first.results] == ["s10"] and [r.name for r in last.results] == ["s40"]
    assert isinstance(refused, Aborted) and refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert late.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert full.code == grpc.StatusCode.RESOURCE_EXHAUSTED
