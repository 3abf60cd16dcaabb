"""A health service that tells the truth: the front door reports NOT_SERVING while the coordinator actor or the
Ray cluster does not answer, and SERVING again once both do. Kubernetes probes (service.health_probe) then take a
front door that cannot reach its cluster out of its Service instead of sending it calls that would all fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
"""Seconds between probes: the status lags an outage (or a recovery) by at most this plus PROBE_TIMEOUT_S."""
PROBE_TIMEOUT_S = 5.0
"""A probe not answered within this counts as unreachable (a stopped or partitioned process never errors)."""

Probe = Callable[[], Awaitable[object]]


def coordinator_probe(actor: Any) -> Probe:
    """A cheap call answered by the coordinator actor itself (reads its store's schema version)."""
    async def probe() -> object:
        return await actor.schema_version.remote()
    return probe


def ray_probe() -> Probe:
    """A call answered by Ray's control store (GCS). It blocks, on a thread of its own: the event loop's default
    executor may be busy with callers' work, which must not read as an outage. While one is still stuck, no second
    is started, so an unreachable cluster costs that one thread."""
    pending: asyncio.Future[object] | None = None
    thread = ThreadPoolExecutor(1, thread_name_prefix="fineserve-health")

    async def probe() -> object:
        nonlocal pending
        if pending is None or pending.done():
            pending = asyncio.get_running_loop().run_in_executor(thread, ray.cluster_resources)
        return await asyncio.shield(pending)
    return probe


class HealthWatch:
    """Probes every PROBE_INTERVAL_S and sets each service name's status when the answer changes."""

    def __init__(self, servicer: health.aio.HealthServicer, names: list[str], probes: dict[str, Probe],
                 interval: float = PROBE_INTERVAL_S, timeout: float = PROBE_TIMEOUT_S) -> None:
        self._servicer, self._names, self._probes = servicer, names, probes
        self._interval, self._timeout = interval, timeout
        self.serving: bool | None = None

    async def check(self) -> list[str]:
        """The names of the probes that failed or did not answer in time, with why."""
        failed = []
        for name, probe in self._probes.items():
            try:
                await asyncio.wait_for(probe(), self._timeout)
            except TimeoutError:
                failed.append(f"{name}: no answer in {self._timeout:.0f}s")
            except Exception as e:  # any failure means the front door cannot serve through it
                failed.append(f"{name}: {type(e).__name__}: {e}")
        return failed

    async def update(self) -> None:
        failed = await self.check()
        serving = not failed
        if serving == self.serving:
            return
        if serving:
            log.info("health: SERVING (coordinator and Ray answer)")
        else:
            log.warning("health: NOT_SERVING (%s)", "; ".join(failed))
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self._names:
            await self._servicer.set(name, status)
        self.serving = serving

    async def run(self) -> None:
        """For the front door's life (cancelled at shutdown, before the servicer enters graceful shutdown)."""
        while True:
            await self.update()
            await asyncio.sleep(self._interval)
