"""RegisterDataset's fetches from object storage or a URL can take an hour, waiting on the network: they run on
their own bounded threads, so one tenant's fetches cannot fill the event loop's default executor, which every
quick store call, uncached model lookup and the health check share; a tenant past its share of fetches is refused
at once; a fetch stops when its call ends, and none outlives --max-fetch-seconds. The store here is a real https
server that drips its answer, as a slow or stuck one does."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from security.helpers import http_server, make_pki, url_of

from fineserve.v1 import datasets_pb2
from service.api.datasets import DatasetsServicer
from service.config import parse_settings
from service.tenancy import set_tenant

HOLD_S = 60.0


class Drip(http.server.BaseHTTPRequestHandler):
    """Promises a large archive and sends it a byte every 0.1 s until the server's `release` is set."""

    def do_GET(self) -> None:
        self.server.started.release()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        release: threading.Event = self.server.release  # type: ignore[attr-defined]
        try:
            while not release.wait(0.1):
                self.wfile.write(b"P")
                self.wfile.flush()
        except OSError:
            pass  # the fetch hung up

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def drip(tmp_path: Path) -> Iterator[tuple[str, Path, http.server.ThreadingHTTPServer]]:
    """(base URL, CA file, server) of a TLS server whose every answer drips."""
    pki = make_pki(tmp_path / "pki")
    with http_server(Drip, pki) as server:
        server.release = threading.Event()  # type: ignore[attr-defined]
        server.started = threading.Semaphore(0)  # type: ignore[attr-defined]
        try:
            yield url_of(server), pki.ca, server
        finally:
            server.release.set()  # type: ignore[attr-defined]


class NoDatasets:
    """The store: nothing to list (a quick call, as a coordinator's is)."""

    def list_datasets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


@dataclass
class Aborted(Exception):
    code: grpc.StatusCode
    message: str


class Context:
    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)


def _servicer(tmp_path: Path, base: str, ca: Path, *flags: str) -> DatasetsServicer:
    settings = parse_settings(["--data-dir", str(tmp_path / "data"), "--allowed-url-prefix", f"{base}/{{tenant}}/",
                               "--url-ca-file", str(ca), *flags])
    return DatasetsServicer(NoDatasets(), settings)  # type: ignore[arg-type]


async def _register(datasets: DatasetsServicer, tenant: str, url: str) -> Any:
    set_tenant(tenant)
    request = datasets_pb2.RegisterDatasetRequest(name="d", layout=datasets_pb2.IMAGE_FOLDERS, uri=url)
    return await datasets.RegisterDataset(request, Context())


async def _list(datasets: DatasetsServicer, tenant: str) -> Any:
    set_tenant(tenant)
    return await datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), Context())


async def _started(server: http.server.ThreadingHTTPServer) -> None:
    """Until a fetch reaches the store (polled: a thread could wait in vain for a full executor)."""
    for _ in range(300):
        if server.started.acquire(blocking=False):  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no fetch reached the store")


async def _refused(task: asyncio.Task[Any]) -> Aborted | None:
    """The task's refusal, or None while it runs."""
    if not task.done():
        return None
    error = task.exception()
    assert isinstance(error, Aborted), error
    return error


def test_a_tenants_held_fetches_leave_other_calls_free_and_past_its_share_are_refused(
        drip: tuple[str, Path, http.server.ThreadingHTTPServer], tmp_path: Path) -> None:
    base, ca, server = drip
    datasets = _servicer(tmp_path, base, ca, "--max-fetches-per-tenant", "2")

    async def main() -> None:
        # More than any default executor holds (min(32, CPUs + 4) threads).
        mallory = [asyncio.create_task(_register(datasets, "mallory", f"{base}/mallory/{i}.zip")) for i in range(40)]
        try:
            for _ in range(2):
                await _started(server)
            await asyncio.sleep(0.5)
            answer = await asyncio.wait_for(_list(datasets, "alice"), 20)  # never answered, were the executor full
            assert list(answer.datasets) == []
            refused = [await _refused(t) for t in mallory]
            assert sum(r is None for r in refused) == 2, "mallory's fetches past her share were not refused"
            assert {(r.code, "max_fetches_per_tenant=2" in r.message) for r in refused if r} == {
                (grpc.StatusCode.RESOURCE_EXHAUSTED, True)}
        finally:
            server.release.set()  # type: ignore[attr-defined]
            await asyncio.gather(*mallory, return_exceptions=True)

    asyncio.run(main())


def test_a_fetch_stops_when_its_call_ends_and_at_max_fetch_seconds(
        drip: tuple[str, Path, http.server.ThreadingHTTPServer], tmp_path: Path) -> None:
    base, ca, server = drip
    datasets = _servicer(tmp_path, base, ca, "--max-fetches-per-tenant", "1", "--max-fetch-seconds", "6")

    async def main() -> None:
        first = asyncio.create_task(_register(datasets, "mallory", f"{base}/mallory/a.zip"))
        await _started(server)
        first.cancel()  # the caller hung up: its fetch frees mallory's one slot at its next chunk (0.1 s)
        for _ in range(30):  # 3 s: well before max_fetch_seconds would end that fetch anyway
            second = asyncio.create_task(_register(datasets, "mallory", f"{base}/mallory/b.zip"))
            await asyncio.sleep(0.1)
            if await _refused(second) is None:
                break
        else:
            raise AssertionError("the cancelled call's fetch kept running: mallory's slot never came back")
        with pytest.raises(Aborted) as ended:
            await asyncio.wait_for(second, HOLD_S)  # the store drips on past max_fetch_seconds
        assert ended.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "longer than max_fetch_seconds=6" in ended.value.message

    asyncio.run(main())
