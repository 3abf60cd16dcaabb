"""In-process fake fineserve servers for the SDK and CLI tests (no server binary needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from fineserve.v1 import (
    common_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    training_pb2_grpc,
)

_ADDERS = [
    (datasets_pb2_grpc.DatasetsServicer, datasets_pb2_grpc.add_DatasetsServicer_to_server),
    (training_pb2_grpc.TrainingServicer, training_pb2_grpc.add_TrainingServicer_to_server),
    (models_pb2_grpc.ModelsServicer, models_pb2_grpc.add_ModelsServicer_to_server),
    (inference_pb2_grpc.InferenceServicer, inference_pb2_grpc.add_InferenceServicer_to_server),
]


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(*servicers)`` starts a gRPC server on 127.0.0.1 with the given servicers (instances of the
    generated servicer base classes) and returns its target; servers stop at the end of the test."""
    servers: list[grpc.Server] = []

    def start(*servicers: object) -> str:
        server = grpc.server(ThreadPoolExecutor(max_workers=8))
        for servicer in servicers:
            added = False
            for base, add in _ADDERS:
                if isinstance(servicer, base):
                    add(servicer, server)
                    added = True
            assert added, f"{servicer!r} is not a fineserve servicer"
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(None)


class EchoInference(inference_pb2_grpc.InferenceServicer):
    """Answers with the image bytes as the top label, so that the order can be checked."""

    def __init__(self) -> None:
        self.requests: list[inference_pb2.ClassifyRequest] = []

    def Classify(self, request, context):
        self.requests.append(request)
        results = [
            inference_pb2.Classification(
                name=image.name,
                top=[
                    inference_pb2.ClassScore(label=image.data.decode(), probability=0.75),
                    inference_pb2.ClassScore(label="other", probability=0.25),
                ][: request.top_k],
            )
            for image in request.images
        ]
        version = request.model.version or 7
        return inference_pb2.ClassifyResponse(
            model=common_pb2.ModelRef(name=request.model.name, version=version), results=results
        )


class FakeModels(models_pb2_grpc.ModelsServicer):
    def GetModel(self, request, context):
        if request.ref.name != "pets":
            context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.ref.name} not found")
        version = request.ref.version or 3
        return models_pb2.Model(ref=common_pb2.ModelRef(name="pets", version=version),
                                loaded_replicas=2 if version == 3 else 0)

    def ListModels(self, request, context):
        if not request.page.page_token:
            return models_pb2.ListModelsResponse(
                models=[models_pb2.Model(ref=common_pb2.ModelRef(name="pets", version=2))],
                next_page_token="p2",
            )
        return models_pb2.ListModelsResponse(
            models=[models_pb2.Model(ref=common_pb2.ModelRef(name="pets", version=1))]
        )

    def DeleteModel(self, request, context):
        return models_pb2.DeleteModelResponse(deleted=[request.ref])


@pytest.fixture
def inference_servicer() -> EchoInference:
    return EchoInference()


@pytest.fixture
def models_servicer() -> FakeModels:
    return FakeModels()
