"""--serve-batch-wait-s through a real server: with a wait, calls that arrive one after another within it share one
forward pass (with the default 0 each of these calls, arriving after the previous pass ended, has its own)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from e2e.helpers import Api, classify
from e2e.test_serving_scale import _answers, _expected, _metric, _metrics, _train, _until, _valid_images
from harness.launcher import ServerProcess

WAIT_S = 2.0
CALLS = 6
GAP_S = 0.1  # between calls: CALLS * GAP_S well inside WAIT_S, and far longer than a 32 px one-image pass


@pytest.fixture(scope="module")
def waiting_server(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("waiting") / "data", "--allowed-root", str(shared_data),
                        "--serve-batch-wait-s", str(WAIT_S), "--metrics-port", "0").start()
    yield srv
    srv.stop()


def _classify_metric(server: ServerProcess, name: str) -> float:
    return _metric(_metrics(server), name, method="classify")


def test_calls_within_the_batch_wait_share_one_forward_pass(waiting_server: ServerProcess, mnist: Path) -> None:
    api = Api(waiting_server.target)
    _train(api, mnist, "waited", "w")
    images = _valid_images(mnist)[::30][:CALLS]
    expected = _expected(waiting_server, "waited", 1, images)
    classify(api, "waited", images[:1])  # loads the model
    _until(lambda: _classify_metric(waiting_server, "fineserve_batch_images_sum") >= 1, "the first pass reported")
    passes = _classify_metric(waiting_server, "fineserve_forward_passes_total")

    with ThreadPoolExecutor(CALLS) as pool:
        calls = []
        for image in images:
            calls.append(pool.submit(classify, api, "waited", [image]))
            time.sleep(GAP_S)
        for call, answer in zip(calls, expected, strict=True):
            assert _answers(call.result()) == [answer]
    _until(lambda: _classify_metric(waiting_server, "fineserve_batch_images_sum") >= 1 + CALLS,
           "the calls' passes reported")
    merged = _classify_metric(waiting_server, "fineserve_forward_passes_total") - passes
    print(f"\n{CALLS} calls {GAP_S}s apart with --serve-batch-wait-s {WAIT_S}: {merged:.0f} forward pass(es)")
    assert merged == 1, f"{merged:.0f} forward passes: the batch wait did not hold the first call for the others"
    api.close()
