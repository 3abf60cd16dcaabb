"""MergedCalls: callers of one model that arrive while requests are out share the next replica request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fineserve_common.errors import ResourceExhausted
from service.call_merging import MergedCalls


class Replicas:
    """Records each request's calls; every request waits until released, so later callers queue."""

    def __init__(self) -> None:
        self.requests: list[list[tuple[list[bytes], Any]]] = []
        self.release = asyncio.Event()
        self.cancelled = 0

    async def send(self, model_id: str, calls: list[tuple[list[bytes], Any]]) -> list[Any]:
        self.requests.append(calls)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return [f"{model_id}:{option}:" + ",".join(i.decode() for i in images) for images, option in calls]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _merger(replicas: Replicas, **kw: int) -> MergedCalls[Any]:
    return MergedCalls(replicas.send, **{"max_images": 4, "max_bytes": 1 << 20, "max_waiting": 16,
                                        "in_flight": 1, **kw})


def test_callers_waiting_behind_a_request_share_the_next_and_get_their_own_answers_in_order() -> None:
    async def scenario() -> tuple[list[Any], Replicas]:
        replicas = Replicas()
        merged = _merger(replicas)
        calls = [([b"a"], 1), ([b"b1", b"b2"], 2), ([b"c"], 3), ([b"d1", b"d2"], 4)]
        tasks = [asyncio.ensure_future(merged.call("m", images, k)) for images, k in calls]
        await _settle()
        replicas.release.set()
        return await asyncio.gather(*tasks), replicas

    answers, replicas = asyncio.run(scenario())
    assert answers == ["m:1:a", "m:2:b1,b2", "m:3:c", "m:4:d1,d2"]
    # The first went alone at once; the next two filled a request to max_images; the last went after.
    assert [[k for _, k in r] for r in replicas.requests] == [[1], [2, 3], [4]]


def test_a_caller_past_its_deadline_leaves_and_a_request_nobody_waits_for_is_cancelled() -> None:
    async def scenario() -> tuple[list[Any], Replicas]:
        replicas = Replicas()
        merged = _merger(replicas)
        first = asyncio.ensure_future(merged.call("m", [b"a"], 1))
        await _settle()
        with pytest.raises(TimeoutError):  # queued behind the first: never sent
            await asyncio.wait_for(merged.call("m", [b"late"], 2), 0.01)
        kept = asyncio.ensure_future(merged.call("m", [b"c"], 3))
        await _settle()
        first.cancel()  # the only caller of the request out: it is cancelled, and the queue moves on
        await _settle()
        replicas.release.set()
        return [await kept], replicas

    answers, replicas = asyncio.run(scenario())
    assert answers == ["m:3:c"]
    assert replicas.cancelled == 1
    assert [[k for _, k in r] for r in replicas.requests] == [[1], [3]]


def test_a_full_queue_refuses_new_callers_only() -> None:
    async def scenario() -> tuple[list[Any], ResourceExhausted]:
        replicas = Replicas()
        merged = _merger(replicas, max_waiting=3)
        tasks = [asyncio.ensure_future(merged.call("m", [b"x"] * n, n)) for n in (1, 2, 1)]
        await _settle()
        with pytest.raises(ResourceExhausted, match="retry with backoff") as info:
            await asyncio.wait_for(merged.call("m", [b"y", b"y"], 9), 5)  # 3 waiting + 2 > 3: at once
        other = asyncio.ensure_future(merged.call("other", [b"z"], 5))  # another model has its own queue
        await _settle()
        replicas.release.set()
        return await asyncio.gather(*tasks, other), info.value

    answers, _ = asyncio.run(scenario())
    assert answers == ["m:1:x", "m:2:x,x", "m:1:x", "other:5:z"]


def test_a_failed_request_fails_its_own_callers_only() -> None:
    async def scenario() -> list[Any]:
        replicas = Replicas()

        async def send(model_id: str, calls: list[tuple[list[bytes], Any]]) -> list[Any]:
            if any(option == "bad" for _, option in calls):
                await _settle()
                raise ResourceExhausted("the serving replicas are at capacity")
            return await replicas.send(model_id, calls)

        merged = MergedCalls(send, max_images=1, max_bytes=1 << 20, max_waiting=16, in_flight=2)
        tasks = [asyncio.ensure_future(merged.call("m", [b"x"], o)) for o in ("bad", "ok", "ok2")]
        await _settle()
        replicas.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    bad, ok, ok2 = asyncio.run(scenario())
    assert isinstance(bad, ResourceExhausted) and ok == "m:ok:x" and ok2 == "m:ok2:x"


def test_a_call_larger_than_the_waiting_cap_is_taken_when_nobody_waits() -> None:
    """The cap bounds what queues at the door, not one request (the door's image limit does that): a 20-image
    call with nothing waiting is sent, while behind a request it is refused."""
    async def scenario() -> tuple[Any, Any]:
        replicas = Replicas()
        merged = _merger(replicas, max_waiting=16)
        big = [str(i).encode() for i in range(20)]
        alone = asyncio.ensure_future(merged.call("m", big, 1))
        await _settle()
        small = asyncio.ensure_future(merged.call("m", [b"s"], 2))  # waits behind the first (in_flight 1)
        await _settle()
        with pytest.raises(ResourceExhausted):
            await merged.call("m", big, 3)
        replicas.release.set()
        return await alone, await small

    alone, small = asyncio.run(scenario())
    assert alone.startswith("m:1:0,1,2") and small == "m:2:s"
