"""Retries of unary calls against a real in-process gRPC server whose servicer fails on purpose: UNAVAILABLE and
RESOURCE_EXHAUSTED are retried with full-jitter backoff inside the call's deadline, for idempotent calls and
for creations that carry a request id only; other codes and plain creations are not."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from fineserve.v1 import training_pb2, training_pb2_grpc
from fineserve_client import AsyncClient, Client, RetryPolicy, errors

FAST = dict(initial_backoff=0.01, max_backoff=0.02)


class Failing(training_pb2_grpc.TrainingServicer):
    """Fails the first ``failures`` calls of each method with ``code``, then answers; counts the attempts."""

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures = failures
        self.code = code
        self.attempts: dict[str, int] = {}

    def _attempt(self, method: str, context) -> None:
        self.attempts[method] = self.attempts.get(method, 0) + 1
        if self.attempts[method] <= self.failures:
            context.abort(self.code, f"{method} not now")

    def GetJob(self, request, context):
        self._attempt("GetJob", context)
        return training_pb2.Job(id=request.id, state=training_pb2.RUNNING)

    def CreateFineTuneJob(self, request, context):
        self._attempt("CreateFineTuneJob", context)
        return training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=request)


class Highest(random.Random):
    """Jitter that always draws the longest sleep, to test the deadline."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_a_read_is_retried_until_it_answers(serve, code):
    servicer = Failing(2, code)
    with Client(serve(servicer), retry=RetryPolicy(max_attempts=3, **FAST)) as client:
        assert client.get_job("job-1").id == "job-1"
    assert servicer.attempts == {"GetJob": 3}


def test_attempts_are_bounded(serve):
    servicer = Failing(99)
    policy = RetryPolicy(max_attempts=3, **FAST)
    with Client(serve(servicer), retry=policy) as client, pytest.raises(errors.Unavailable, match="GetJob not now"):
        client.get_job("job-1")
    assert servicer.attempts == {"GetJob": 3}


def test_other_codes_are_not_retried(serve):
    servicer = Failing(1, grpc.StatusCode.INVALID_ARGUMENT)
    with Client(serve(servicer), retry=RetryPolicy(**FAST)) as client, pytest.raises(errors.InvalidArgument):
        client.get_job("job-1")
    assert servicer.attempts == {"GetJob": 1}


def test_a_creation_is_retried_only_with_a_request_id(serve):
    servicer = Failing(1)
    with Client(serve(servicer), retry=RetryPolicy(**FAST)) as client:
        with pytest.raises(errors.Unavailable):
            client.create_fine_tune_job("ds-1", "pets")
        assert servicer.attempts == {"CreateFineTuneJob": 1}
        servicer.attempts.clear()
        assert client.create_fine_tune_job("ds-1", "pets", request_id="req-1").id == "job-1"
    assert servicer.attempts == {"CreateFineTuneJob": 2}


def test_retries_stay_inside_the_deadline(serve):
    """A 5 s backoff cannot fit in a 1 s deadline: the first error is raised, no second attempt is made."""
    servicer = Failing(99)
    policy = RetryPolicy(max_attempts=5, initial_backoff=5.0, max_backoff=5.0, rng=Highest())
    with Client(serve(servicer), timeout=1.0, retry=policy) as client, pytest.raises(errors.Unavailable):
        client.get_job("job-1")
    assert servicer.attempts == {"GetJob": 1}


def test_retry_one_means_never(serve):
    servicer = Failing(1)
    with Client(serve(servicer), retry=1) as client, pytest.raises(errors.Unavailable):
        client.get_job("job-1")
    assert servicer.attempts == {"GetJob": 1}


def test_the_async_client_retries_alike(serve):
    servicer = Failing(2)
    target = serve(servicer)

    async def run() -> str:
        async with AsyncClient(target, retry=RetryPolicy(max_attempts=3, **FAST)) as client:
            with pytest.raises(errors.Unavailable):
                await client.create_fine_tune_job("ds-1", "pets")
            return (await client.get_job("job-1")).id

    assert asyncio.run(run()) == "job-1"
    assert servicer.attempts == {"CreateFineTuneJob": 1, "GetJob": 3}


def test_full_jitter_bounds():
    """Sleeps are drawn from [0, min(max_backoff, initial * multiplier ** (n - 1))], spread over that range."""
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.5, multiplier=2.0, rng=random.Random(7))
    assert [policy.backoff_cap(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    for attempt in (1, 3, 5):
        cap = policy.backoff_cap(attempt)
        draws = [policy.backoff(attempt) for _ in range(400)]
        assert all(0.0 <= d <= cap for d in draws)
        assert min(draws) < 0.1 * cap and max(draws) > 0.9 * cap  # full jitter, not a fixed step


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
