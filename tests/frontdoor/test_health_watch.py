"""The Ray probe of the health service runs on a thread of its own: callers' work that fills the event loop's
default executor (uploads being extracted, store calls) must not read as an outage, which would take the front
door out of its Service (tests/security/test_health.py has the real outages)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service import health_watch


def test_the_ray_probe_answers_while_the_default_executor_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_watch.ray, "cluster_resources", lambda: {"CPU": 2.0})
    release = threading.Event()

    async def main() -> None:
        busy = [asyncio.create_task(asyncio.to_thread(release.wait, 30)) for _ in range(64)]  # > any default pool
        try:
            await asyncio.sleep(0.2)
            assert await asyncio.wait_for(health_watch.ray_probe()(), 5) == {"CPU": 2.0}
        finally:
            release.set()
            await asyncio.gather(*busy)

    asyncio.run(main())
