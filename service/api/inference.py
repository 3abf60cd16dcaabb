"""Inference servicer: validates requests, routes them to the Ray Serve replicas."""

from __future__ import annotations

from typing import Any

import grpc

from fineserve.v1 import inference_pb2, inference_pb2_grpc, training_pb2
from service.api.models import resolve_model
from service.config import Limits
from service.errors import ApiError, invalid, rpc, unimplemented
from service.store import Store


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(self, store: Store, handle: Any, limits: Limits) -> None:
        self._store = store
        self._handle = handle
        self._limits = limits

    @rpc
    async def Classify(self, request: inference_pb2.ClassifyRequest,
                       context: grpc.aio.ServicerContext) -> inference_pb2.ClassifyResponse:
        model, _ = resolve_model(self._store, request.model)
        if model.task != training_pb2.IMAGE_CLASSIFICATION:
            raise invalid(f"model {model.ref.name}/{model.ref.version} is a "
                          f"{training_pb2.Task.Name(model.task)} model; Classify needs IMAGE_CLASSIFICATION")
        if not request.images:
            raise invalid("images is empty: send at least one image")
        if len(request.images) > self._limits.max_images_per_request:
            raise ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"{len(request.images)} images exceed max_images_per_request="
                           f"{self._limits.max_images_per_request}")
        for i, image in enumerate(request.images):
            if not image.data:
                raise invalid(f"image {i} has no data")
        if request.top_k < 0:
            raise invalid("top_k must be >= 0 (0 = default 5)")
        model_id = f"{model.ref.name}/{model.ref.version}"
        answer = await self._handle.options(multiplexed_model_id=model_id).classify.remote(
            [im.data for im in request.images], request.top_k or 5)
        if "error" in answer:
            raise ApiError(grpc.StatusCode[answer["error"]["code"]], answer["error"]["message"])
        return inference_pb2.ClassifyResponse(
            model=model.ref,
            results=[inference_pb2.Classification(
                name=image.name,
                top=[inference_pb2.ClassScore(label=label, probability=p) for label, p in top])
                for image, top in zip(request.images, answer["results"], strict=True)])

    @rpc
    async def ScoreLabels(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented("ScoreLabels (multi-label scores)", "the multi-label and Grad-CAM issue")

    @rpc
    async def Segment(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented("Segment", "the segmentation (U-Net) issue")

    @rpc
    async def Recommend(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented("Recommend", "the collaborative-filtering issue")

    @rpc
    async def Explain(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented("Explain (Grad-CAM heatmaps)", "the multi-label and Grad-CAM issue")

    @rpc
    async def PredictText(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented("PredictText", "the ULMFiT text issue")
