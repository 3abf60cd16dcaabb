"""Refusals raised below the servicers carry a status name only; the servicer boundary (service/errors.py)
maps it to the gRPC code, and a replica's Refused answer comes back as the same error types."""

from __future__ import annotations

import pickle

import grpc
import pytest

from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, training_pb2
from fineserve_common.answers import Refused
from fineserve_common.errors import FineserveError, InvalidArgument, NotFound, ResourceExhausted
from fineserve_common.names import clip
from service.archives import ArchiveError, ArchiveTooLarge
from service.auth import AuthError
from service.dataset_layout import LayoutError
from service.errors import MAX_STATUS_MESSAGE_BYTES, replica_answer, status_code, status_message
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
