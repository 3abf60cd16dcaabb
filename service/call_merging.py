"""Concurrent calls for one model, sent to the replicas as one request while earlier ones are in flight.

Each replica request costs a few milliseconds of CPU in the front door and in the replica (routing, Ray Serve's
transport, the replica's request handling), whatever its size, so one-image calls at high concurrency were
bound by those hops, not by the model. A lone caller's request goes at once, as before; while `in_flight`
requests for the model are out, newer callers wait together and go as the next request. Each caller keeps its
own answer (in the order of its images), its own deadline (cancelled, it leaves; a request none of whose
callers waits any more is cancelled) and its own refusal (the replica answers a bad image to its call alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fineserve_common.errors import ResourceExhausted

Answer = TypeVar("Answer")
IN_FLIGHT = 8
"""Merged requests out at once per model and front door: enough to keep several replicas (and a replica's
decoding beside its forward pass) busy; the calls arriving meanwhile share the next one."""


@dataclass
class _Waiting(Generic[Answer]):
    images: list[bytes]
    option: Any
    future: asyncio.Future[Answer]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(map(len, self.images))


@dataclass
class _Model(Generic[Answer]):
    waiting: list[_Waiting[Answer]] = field(default_factory=list)
    in_flight: int = 0


class MergedCalls(Generic[Answer]):
    """send(model id, [(images, option) per call]) -> one answer per call, in order (a Refused among them is
    that call's own); max_images and max_bytes bound one merged request (a larger call goes alone);
    max_waiting images may wait per model before a new call is refused with RESOURCE_EXHAUSTED (a call finding
    nobody waiting is taken whatever its size: the door's per-request image limit bounds it)."""

    def __init__(self, send: Callable[[str, list[tuple[list[bytes], Any]]], Awaitable[list[Answer]]],
                 max_images: int, max_bytes: int, max_waiting: int, in_flight: int = IN_FLIGHT) -> None:
        self._send = send
        self._max_images = max_images
        self._max_bytes = max_bytes
        self._max_waiting = max_waiting
        self._in_flight = in_flight
        self._models: dict[str, _Model[Answer]] = {}

    async def call(self, model_id: str, images: list[bytes], option: Any) -> Answer:
        """This caller's answer, sent alone or with the callers waiting beside it."""
        model = self._models.setdefault(model_id, _Model())
        waiting = sum(len(w.images) for w in model.waiting)
        if waiting and waiting + len(images) > self._max_waiting:  # a call with nobody waiting is always taken
            raise ResourceExhausted(f"over {self._max_waiting} images are waiting for this model's replicas; "
                                    "retry with backoff")
        mine = _Waiting(images, option, asyncio.get_running_loop().create_future())
        model.waiting.append(mine)
        self._flush(model_id, model)
        try:
            return await mine.future
        except asyncio.CancelledError:
            if mine in model.waiting:  # not sent yet: it never will be
                model.waiting.remove(mine)
                if not model.waiting and not model.in_flight:
                    self._models.pop(model_id, None)
            raise

    def _flush(self, model_id: str, model: _Model[Answer]) -> None:
        """Send the oldest waiting calls (as many as fit; always one) when fewer than in_flight are out."""
        while model.waiting and model.in_flight < self._in_flight:
            group: list[_Waiting[Answer]] = []
            images = size = 0
            while model.waiting:
                w = model.waiting[0]
                if group and (images + len(w.images) > self._max_images or size + w.size > self._max_bytes):
                    break
                group.append(model.waiting.pop(0))
                images, size = images + len(w.images), size + w.size
            model.in_flight += 1
            task = asyncio.ensure_future(self._send(model_id, [(w.images, w.option) for w in group]))
            task.add_done_callback(lambda t, group=group: self._done(model_id, model, group, t))
            for w in group:  # when every caller of the group has gone, so does its request
                w.future.add_done_callback(lambda _, group=group, task=task: _abandoned(group, task))

    def _done(self, model_id: str, model: _Model[Answer], group: list[_Waiting[Answer]],
              task: asyncio.Future[list[Answer]]) -> None:
        model.in_flight -= 1
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        answers = task.result() if error is None else []
        if error is None and len(answers) != len(group):
            error = RuntimeError(f"{len(answers)} answers to {len(group)} merged calls")
        for i, w in enumerate(group):
            if w.future.done():
                continue
            if task.cancelled():
                w.future.cancel()
            elif error is not None:
                w.future.set_exception(error)
            else:
                w.future.set_result(answers[i])
        if not model.waiting and not model.in_flight:
            self._models.pop(model_id, None)
        else:
            self._flush(model_id, model)


def _abandoned(group: list[_Waiting[Any]], task: asyncio.Future[Any]) -> None:
    if not task.done() and all(w.future.cancelled() for w in group):
        task.cancel()
