"""gRPC status codes become typed FineserveError subclasses."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from fineserve.v1 import datasets_pb2_grpc, training_pb2, training_pb2_grpc
from fineserve_client import Client, errors


class AbortingDatasets(datasets_pb2_grpc.DatasetsServicer):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code, self.message = code, message

    def GetDataset(self, request, context):
        context.set_trailing_metadata((("x-debug", "abc"),))
        context.abort(self.code, self.message.format(id=request.id))


class AbortingWatch(training_pb2_grpc.TrainingServicer):
    def WatchJob(self, request, context):
        yield training_pb2.JobEvent(job_id=request.id, sequence=1)
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your job")


def test_not_found_maps_to_not_found_with_message(serve):
    target = serve(AbortingDatasets(grpc.StatusCode.NOT_FOUND, "dataset {id} not found"))
    with Client(target) as client, pytest.raises(errors.NotFound) as info:
        client.get_dataset("ds-missing")
    err = info.value
    assert isinstance(err, errors.FineserveError)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.message == "dataset ds-missing not found"
    assert err.details.get("x-debug") == "abc"
    assert isinstance(err.__cause__, grpc.RpcError)
    assert str(err) == "NOT_FOUND: dataset ds-missing not found"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.UNIMPLEMENTED, errors.Unimplemented),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, errors.Cancelled),
        (grpc.StatusCode.INTERNAL, errors.Internal),
        (grpc.StatusCode.ABORTED, errors.FineserveError),
    ],
)
def test_every_code_has_its_class(serve, code, cls):
    with Client(serve(AbortingDatasets(code, "boom"))) as client, pytest.raises(cls) as info:
        client.get_dataset("ds-1")
    assert info.value.code == code
    assert info.value.message == "boom"


def test_errors_while_streaming_are_mapped(serve):
    with (
        Client(serve(AbortingWatch())) as client,
        pytest.raises(errors.PermissionDenied, match="not your job"),
    ):
        list(client.watch_job("job-1"))


def test_unreachable_server_is_unavailable():
    with Client("127.0.0.1:1", timeout=5) as client, pytest.raises(errors.Unavailable):
        client.get_job("job-1")


def test_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys, fineserve_client, fineserve_client.cli\n"
        "heavy = [m for m in ('torch', 'torchvision', 'ray', 'numpy', 'tqdm') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
