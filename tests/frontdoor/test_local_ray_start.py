"""The embedded Ray is started again when its head misses its own start-up deadline, and only then."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from service import ray_serving

TIMED_OUT = Exception("The current node timed out during startup. This could happen because some of the raylet "
                      "failed to startup or the GCS has become overloaded.")


class FlakyInit:
    """ray.init that fails with the given errors first, then starts; counts calls and shutdowns."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls: list[dict[str, Any]] = []
        self.shutdowns = 0
        self.started: list[subprocess.Popen[bytes]] = []
        """A process per try, as a real head starts its GCS before it misses the deadline."""

    def init(self, **kw: Any) -> None:
        self.calls.append(kw)
        self.started.append(subprocess.Popen(["sleep", "60"]))
        if self.errors:
            raise self.errors.pop(0)

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyInit]:
    fake = FlakyInit([])
    monkeypatch.setattr(ray_serving.ray, "init", fake.init)
    monkeypatch.setattr(ray_serving.ray, "shutdown", fake.shutdown)
    yield fake
    for process in fake.started:
        process.kill()
        process.wait()


def test_a_start_up_timeout_is_tried_again(flaky: FlakyInit) -> None:
    flaky.errors = [TIMED_OUT, TIMED_OUT]
    ray_serving.start_local_ray({"num_cpus": 2})
    assert len(flaky.calls) == 3 and flaky.shutdowns == 2
    assert all(c == {"address": "local", "namespace": "fineserve", "num_cpus": 2} for c in flaky.calls)
    # the failed tries' processes are gone; the started Ray's are left running
    assert [p.wait(timeout=10) for p in flaky.started[:2]] == [-9, -9]
    assert flaky.started[2].poll() is None


def test_tries_are_bounded(flaky: FlakyInit) -> None:
    flaky.errors = [TIMED_OUT] * ray_serving.LOCAL_RAY_STARTS
    with pytest.raises(Exception, match="timed out during startup"):
        ray_serving.start_local_ray({})
    assert len(flaky.calls) == ray_serving.LOCAL_RAY_STARTS


def test_other_errors_are_not_retried(flaky: FlakyInit) -> None:
    flaky.errors = [ValueError("bad num_cpus")]
    with pytest.raises(ValueError):
        ray_serving.start_local_ray({})
    assert len(flaky.calls) == 1 and flaky.shutdowns == 0
