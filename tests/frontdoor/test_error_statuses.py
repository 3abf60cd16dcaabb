"""Refusals raised below the servicers carry a status name only; the servicer boundary (service/errors.py)
maps it to the gRPC code, and a replica's Refused answer comes back as the same error types."""

from __future__ import annotations

import asyncio
import pickle
import time

import grpc
import pytest

from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, training_pb2
from fineserve_common.answers import Refused
from fineserve_common.errors import FineserveError, InvalidArgument, NotFound, ResourceExhausted
from fineserve_common.names import clip
from service.archives import ArchiveError, ArchiveTooLarge
from service.auth import AuthError
from service.dataset_layout import LayoutError
from service.errors import (
    MAX_STATUS_MESSAGE_BYTES,
    deadline_passed,
    replica_answer,
    rpc,
    status_code,
    status_message,
)
from service.ids import check_request_ids

LONG = "x" * 20_000


@pytest.mark.parametrize(("error", "code"), [
    (InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (ArchiveError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (ArchiveTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LayoutError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (AuthError("x"), grpc.StatusCode.UNAUTHENTICATED),
])
def test_status_codes(error: FineserveError, code: grpc.StatusCode) -> None:
    assert status_code(error) == code
    assert status_code(pickle.loads(pickle.dumps(error))) == code, "crosses the Ray actor boundary intact"


def test_replica_answers() -> None:
    assert replica_answer([]) == []
    with pytest.raises(NotFound, match="no such label"):
        replica_answer(Refused("NOT_FOUND", "no such label"))
    with pytest.raises(FineserveError) as e:
        replica_answer(Refused("SOMETHING_NEW", "?"))
    assert status_code(e.value) == grpc.StatusCode.INTERNAL
    assert not isinstance(ResourceExhausted("x"), ValueError), "only caller-input errors are ValueErrors"


def test_a_caller_value_is_quoted_clipped() -> None:
    assert clip("ds-1") == "'ds-1'"
    quoted = clip(LONG)
    assert len(quoted) < 100 and quoted.startswith("'xxx") and quoted.endswith("(20000 characters)")


@pytest.mark.parametrize("message", ["dataset " + LONG + " not found", "\U0001F600" * 20_000, "x" * 2000])
def test_status_messages_fit_a_trailer(message: str) -> None:
    """A message over the bound (here a 20,000-character id) is cut in its middle: gRPC would otherwise answer
    RESOURCE_EXHAUSTED "metadata size exceeds" in place of the error's own status."""
    sent = status_message(NotFound(message))
    assert len(sent.encode()) <= MAX_STATUS_MESSAGE_BYTES
    assert sent[:8] == message[:8] and sent[-4:] == message[-4:]
    assert status_message(NotFound("short")) == "short"


@pytest.mark.parametrize(("request_", "field"), [
    (datasets_pb2.GetDatasetRequest(id=LONG), "id"),
    (training_pb2.CancelJobRequest(id="job-1\0"), "id"),
    (inference_pb2.ClassifyRequest(model=common_pb2.ModelRef(name=LONG)), "model.name"),
    (training_pb2.CreateFineTuneJobRequest(model_name="m", request_id=LONG), "request_id"),
    (training_pb2.CreateFineTuneJobRequest(base=training_pb2.BaseModel(stored_model=common_pb2.ModelRef(name=LONG))),
     "base.stored_model.name"),
    (training_pb2.FindLearningRateRequest(dataset_id=LONG), "dataset_id"),
])
def test_ids_are_bounded_at_the_door(request_: object, field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field} (is 20000 characters long|.*NUL byte)") as e:
        check_request_ids(request_)
    assert len(e.value.message) < 200


def test_ids_within_bounds_and_data_values_pass() -> None:
    check_request_ids(training_pb2.GetJobRequest(id="job-00000000deadbeef"))
    check_request_ids(inference_pb2.ClassifyRequest(model=common_pb2.ModelRef(name="pets", version=2)))
    # a user id of the caller's own ratings is data, not one of the service's ids
    check_request_ids(inference_pb2.RecommendRequest(model=common_pb2.ModelRef(name="films"), user_id="u" * 500))


class _Context:
    """The part of grpc.aio.ServicerContext the rpc wrapper uses: a deadline, and abort raising as gRPC's does."""

    def __init__(self, remaining: float | None, ended: bool = False) -> None:
        self.ends = None if remaining is None else time.monotonic() + remaining
        self.ended = ended
        self.code: grpc.StatusCode | None = None

    def time_remaining(self) -> float | None:
        return None if self.ends is None else self.ends - time.monotonic()

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        if self.ended:  # what gRPC raises when its core has already finished the call
            raise grpc.aio.InternalError("execute_batch")
        self.code = code
        raise grpc.aio.AbortError()


class _Servicer:
    @rpc
    async def Slow(self, request: object, context: object) -> None:
        await asyncio.sleep(10)

    @rpc
    async def OwnTimeout(self, request: object, context: object) -> None:
        await asyncio.wait_for(asyncio.sleep(10), 0.01)


@pytest.mark.parametrize(("method", "remaining", "code"), [
    ("Slow", 0.05, grpc.StatusCode.DEADLINE_EXCEEDED),
    ("OwnTimeout", 30.0, grpc.StatusCode.INTERNAL),
    ("OwnTimeout", None, grpc.StatusCode.INTERNAL),
])
def test_the_callers_deadline_is_told_from_a_timeout_of_our_own(method: str, remaining: float | None,
                                                                 code: grpc.StatusCode) -> None:
    """Only the wrapper's own timer (the caller's deadline) is DEADLINE_EXCEEDED; a timeout inside the handler is a
    fault of ours, INTERNAL and logged, however much of the caller's deadline is left."""
    context = _Context(remaining)
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(getattr(_Servicer(), method)(None, context))
    assert context.code == code


def test_a_call_ended_near_its_deadline_counts_as_the_deadline() -> None:
    """gRPC cancels a call at its deadline tens of milliseconds early: within the slack it is the deadline, before
    it a hang-up."""
    assert deadline_passed(_Context(0.03)), "gRPC was seen ending calls 30 ms before their deadline"
    assert not deadline_passed(_Context(1.0))
    assert not deadline_passed(_Context(None))


def test_a_deadline_grpc_already_ended_the_call_for_leaves_the_handler_cancelled() -> None:
    """The wrapper's timer and gRPC's own deadline race: when gRPC has finished the call first, the status cannot
    be sent, and the handler ends cancelled (which gRPC takes quietly) rather than with the send's InternalError
    (which gRPC logs as an ERROR with a traceback)."""
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_Servicer().Slow(None, _Context(0.05, ended=True)))
