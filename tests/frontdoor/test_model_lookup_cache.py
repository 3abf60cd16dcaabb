"""A front door's model lookups: cached while the coordinator's long poll answers, dropped at every change it
reports, at a failed poll and at the door's own deletes; the counter that the long poll waits on; and the
replicas' ids of model directories."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from control import coordinator
from control.coordinator import ChangeCounter, RemoteStore
from control.registry import Registry
from control.store import Store
from fineserve.v1 import common_pb2, models_pb2
from fineserve_common.errors import FailedPrecondition


class FakeCoordinator:
    """The coordinator's store calls (counted) and its long poll, answered by the test through `polls`."""

    def __init__(self) -> None:
        self.models = {("default", "m", 0): "default/m/1"}
        self.lookups = 0
        self.polls: asyncio.Queue[int | Exception] = asyncio.Queue()

    def store(self, method: str, *args: Any, tenant: str) -> Any:
        if method == "delete_models":
            self.models.clear()
            return [(1, "default/m/1")]
        self.lookups += 1
        path = self.models.get((tenant, *args))
        return None if path is None else (models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=1)), path)

    async def poll(self) -> int:
        answer = await self.polls.get()
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCoordinator:
    fake = FakeCoordinator()
    # RemoteStore reaches the actor only through these two functions: point them at the fake.
    monkeypatch.setattr(coordinator, "_call", lambda method, *a, **kw: method(*a, **kw))
    monkeypatch.setattr(coordinator, "_result", lambda ref: ref)
    monkeypatch.setattr(coordinator, "FOLLOW_RETRY_S", 0.01)
    return fake


class _Actor:
    def __init__(self, fake: FakeCoordinator) -> None:
        self.store = fake.store
        self.models_changed = type("M", (), {"remote": staticmethod(lambda seen: fake.poll())})


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_lookups_are_cached_only_while_followed_and_dropped_at_each_change(fake: FakeCoordinator) -> None:
    async def scenario() -> None:
        store = RemoteStore(_Actor(fake))
        store.get_model("m", 0, tenant="default")
        store.get_model("m", 0, tenant="default")
        assert fake.lookups == 2, "nothing is cached before the coordinator's long poll has answered"

        following = asyncio.create_task(store.follow_model_changes())
        await fake.polls.put(7)  # the first poll answers at once with the current count
        await _settle()
        model, _ = store.get_model("m", 0, tenant="default")
        model.loaded_replicas = 3  # a caller filling in its answer does not touch the cached copy
        again, path = store.get_model("m", 0, tenant="default")
        assert (fake.lookups, again.loaded_replicas, path) == (3, 0, "default/m/1")

        fake.models[("default", "m", 0)] = "default/m/2"  # another door published version 2
        await fake.polls.put(8)
        await _settle()
        assert store.get_model("m", 0, tenant="default")[1] == "default/m/2"
        assert store.get_model("m", 0, tenant="other") is None and fake.lookups == 5  # misses are not cached
        assert store.get_model("m", 0, tenant="other") is None and fake.lookups == 6

        store.delete_models("m", 0, tenant="default")  # this door's own delete: no wait for the poll
        assert store.get_model("m", 0, tenant="default") is None

        fake.models[("default", "m", 0)] = "default/m/3"
        await fake.polls.put(RuntimeError("coordinator restarting"))
        await _settle()
        lookups = fake.lookups
        store.get_model("m", 0, tenant="default")
        store.get_model("m", 0, tenant="default")
        assert fake.lookups == lookups + 2, "a door that lost its coordinator caches nothing"

        await fake.polls.put(0)  # the restarted coordinator answers again
        await asyncio.sleep(0.05)
        store.get_model("m", 0, tenant="default")
        store.get_model("m", 0, tenant="default")
        assert fake.lookups == lookups + 3
        following.cancel()

    asyncio.run(scenario())


def test_change_counter_wakes_a_waiter_from_another_thread() -> None:
    async def scenario() -> None:
        counter = ChangeCounter()
        assert await counter.after(-1) == 0  # differs from what was seen: at once
        waiting = asyncio.create_task(counter.after(0))
        await _settle()
        assert not waiting.done()
        threading.Thread(target=counter.bump).start()  # the coordinator's store may change from a thread
        assert await asyncio.wait_for(waiting, 5) == 1

        gone = asyncio.create_task(counter.after(1))
        await _settle()
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        assert counter._waiters == [], "a front door that stopped polling leaves nothing behind"

    asyncio.run(scenario())


def test_serving_ids_name_model_directories_inside_the_store_only(tmp_path: Path) -> None:
    registry = Registry(Store(tmp_path / "fineserve.db"), tmp_path)
    version = tmp_path / "models" / "default" / "m" / "1"
    version.mkdir(parents=True)
    assert registry.serving_id(str(version)) == registry.serving_id(str(version)) == "default/m/1"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "models" / "default" / "escape").symlink_to(tmp_path / "elsewhere")
    for _ in range(2):  # a refusal is not remembered as an id
        with pytest.raises(FailedPrecondition):
            registry.serving_id(str(tmp_path / "models" / "default" / "escape"))
