"""Small gRPC helpers for the end-to-end tests (raw stubs, as another service would call us)."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc

from fineserve.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)


class Api:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        self.datasets = datasets_pb2_grpc.DatasetsStub(self.channel)
        self.training = training_pb2_grpc.TrainingStub(self.channel)
        self.models = models_pb2_grpc.ModelsStub(self.channel)
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def zip_folder(folder: Path, only: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.rglob("*")):
            rel = f.relative_to(folder)
            if f.is_file() and (not only or rel.parts[0] in only):
                zf.write(f, f"{folder.name}/{rel.as_posix()}")
    return buf.getvalue()


def upload_requests(data: bytes, name: str = "ds", sha256: str | None = None, fmt: int = datasets_pb2.ZIP,
                    layout: int = datasets_pb2.IMAGE_FOLDERS) -> Iterator[datasets_pb2.UploadDatasetRequest]:
    yield datasets_pb2.UploadDatasetRequest(header=datasets_pb2.UploadHeader(
        name=name, layout=layout, format=fmt,
        sha256=sha256 or hashlib.sha256(data).hexdigest(), size_bytes=len(data)))
    for i in range(0, len(data), 256 << 10):
        yield datasets_pb2.UploadDatasetRequest(chunk=data[i:i + (256 << 10)])


def wait_for(api: Api, job_id: str, states: set[int], timeout: float = 600) -> training_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.training.GetJob(training_pb2.GetJobRequest(id=job_id), timeout=10)
        if job.state in states:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {training_pb2.JobState.Name(job.state)} after {timeout}s")


TERMINAL = {training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED}


def classify(api: Api, name: str, images: list[bytes], version: int = 0,
             top_k: int = 2) -> inference_pb2.ClassifyResponse:
    return api.inference.Classify(inference_pb2.ClassifyRequest(
        model=common_pb2.ModelRef(name=name, version=version), top_k=top_k,
        images=[common_pb2.Image(data=d, name=str(i)) for i, d in enumerate(images)]), timeout=120)


def rpc_code(call, *args, **kwargs) -> grpc.StatusCode:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK
