"""Refusals raised below the servicers carry a status name only; the servicer boundary (service/errors.py)
maps it to the gRPC code, and a replica's Refused answer comes back as the same error types."""

from __future__ import annotations

import pickle

import grpc
import pytest

from fineserve_common.answers import Refused
from fineserve_common.errors import FineserveError, InvalidArgument, NotFound, ResourceExhausted
from service.archives import ArchiveError, ArchiveTooLarge
from service.auth import AuthError
from service.dataset_layout import LayoutError
from service.errors import replica_answer, status_code


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
