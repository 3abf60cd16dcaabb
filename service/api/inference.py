"""Inference servicer: validates requests, routes them to the Ray Serve replicas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from control.store import Store
from fineserve.v1 import inference_pb2, inference_pb2_grpc, models_pb2, training_pb2
from fineserve_common.answers import TopClasses
from fineserve_common.errors import InvalidArgument
from service.api.embedding_inference import recommend_query, recommend_response, tabular_response, tabular_rows
from service.api.image_answers import (
    classify_response,
    heatmaps_response,
    label_scores_response,
    scores,
    segment_response,
)
from service.api.interpretation import EXPLAINABLE, check_target, label_threshold
from service.api.models import resolve_model_for
from service.call_merging import MergedCalls
from service.config import Limits, ServingConfig
from service.errors import replica_answer, rpc
from service.images import check_images, check_texts, set_pixel_limit
from service.replica_calls import Reply, ask, within


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    """serving_id(path) names a model directory for the replicas ("<tenant>/<name>/<version>")."""

    def __init__(self, store: Store, handle: Any, limits: Limits, serving_id: Callable[[str], str],
                 serving: ServingConfig | None = None) -> None:
        self._store = store
        self._handle = handle
        self._limits = limits
        self._serving_id = serving_id
        set_pixel_limit(limits.max_image_pixels)
        serving = serving or ServingConfig()
        self._classify = self._merged("classify_calls", serving)
        self._score_labels = self._merged("score_labels_calls", serving)

    def _merged(self, method: str, serving: ServingConfig) -> MergedCalls[Any]:
        """Concurrent calls for one model as one request to the replicas' method (service/call_merging.py),
        which answers each call apart."""
        async def send(model_id: str, calls: list[tuple[list[bytes], Any]]) -> list[Any]:
            replicas = self._handle.options(multiplexed_model_id=model_id, _by_reference=False)
            return await self._ask(getattr(replicas, method).remote(calls))

        return MergedCalls(send, max_images=serving.max_batch_size, max_bytes=self._limits.max_message_bytes,
                           max_waiting=serving.max_queued_requests)

    async def _ask(self, response: Any) -> Any:
        return await ask(response, self._limits.max_message_bytes)

    def _fit(self, answer: Reply) -> Reply:
        """The response, if it fits the callers' message limit (an Explain of a few photos may not)."""
        return within(answer, self._limits.max_message_bytes)

    def _replicas(self, path: str) -> Any:
        """The serving handle routed to the replicas holding (or loading) the model at path. Requests travel
        to the replica over Ray Serve's gRPC transport (_by_reference=False), a shorter path than an actor call
        for payloads that are used once."""
        return self._handle.options(multiplexed_model_id=self._serving_id(path), _by_reference=False)

    async def _replica_for(self, ref: Any, tasks: tuple[int, ...], rpc_name: str) -> tuple[models_pb2.Model, Any]:
        """(model, replicas routed to it) for a model of one of tasks."""
        model, path = await resolve_model_for(self._store, ref, rpc_name, tasks)
        return model, self._replicas(path)

    async def _merged_call(self, request: Any, tasks: tuple[int, ...], rpc_name: str, merged: MergedCalls[Any],
                           option: Callable[[Any], Any]) -> tuple[models_pb2.Model, Any]:
        """(model, this call's answer) for an image request whose concurrent calls share replica requests;
        option(request) is its checked option for the replicas. A refusal of this call's images is raised."""
        model, path = await resolve_model_for(self._store, request.model, rpc_name, tasks)
        check_images(request.images, self._limits)
        answer = await merged.call(self._serving_id(path), _data(request), option(request))
        return model, replica_answer(answer)

    async def _image_model(self, request: Any, tasks: tuple[int, ...], rpc_name: str) -> tuple[models_pb2.Model, Any]:
        """_replica_for an image request, its images within limits."""
        found = await self._replica_for(request.model, tasks, rpc_name)
        check_images(request.images, self._limits)
        return found

    @rpc
    async def Classify(self, request: inference_pb2.ClassifyRequest,
                       context: grpc.aio.ServicerContext) -> inference_pb2.ClassifyResponse:
        model, answer = await self._merged_call(request, (training_pb2.IMAGE_CLASSIFICATION,), "Classify",
                                                self._classify, _top_k)
        return self._fit(classify_response(model, request.images, answer))

    @rpc
    async def ScoreLabels(self, request: inference_pb2.ScoreLabelsRequest,
                          context: grpc.aio.ServicerContext) -> inference_pb2.ScoreLabelsResponse:
        model, answer = await self._merged_call(request, (training_pb2.MULTI_LABEL_CLASSIFICATION,), "ScoreLabels",
                                                self._score_labels, label_threshold)
        return self._fit(label_scores_response(model, request.images, answer))

    @rpc
    async def Segment(self, request: inference_pb2.SegmentRequest,
                      context: grpc.aio.ServicerContext) -> inference_pb2.SegmentResponse:
        model, replicas = await self._image_model(request, (training_pb2.SEGMENTATION,), "Segment")
        results = await self._ask(replicas.segment.remote(_data(request), request.include_probabilities))
        return self._fit(segment_response(model, request.images, results))

    @rpc
    async def Recommend(self, request: inference_pb2.RecommendRequest,
                        context: grpc.aio.ServicerContext) -> inference_pb2.RecommendResponse:
        query = recommend_query(request)
        model, replica = await self._replica_for(request.model, (training_pb2.COLLABORATIVE_FILTERING,), "Recommend")
        answer = await self._ask(replica.recommend.remote(query))
        return self._fit(recommend_response(model.ref, request, query, answer))

    @rpc
    async def PredictTabular(self, request: inference_pb2.PredictTabularRequest,
                             context: grpc.aio.ServicerContext) -> inference_pb2.PredictTabularResponse:
        rows = tabular_rows(request)
        model, replica = await self._replica_for(request.model, (training_pb2.TABULAR,), "PredictTabular")
        results = await self._ask(replica.predict_tabular.remote(rows, request.top_k or 5))
        return self._fit(tabular_response(model.ref, results))

    @rpc
    async def Explain(self, request: inference_pb2.ExplainRequest,
                      context: grpc.aio.ServicerContext) -> inference_pb2.ExplainResponse:
        model, replicas = await self._image_model(request, EXPLAINABLE, "Explain")
        check_target(request, model)
        results = await self._ask(replicas.explain.remote(_data(request), request.target))
        return self._fit(heatmaps_response(model, request.images, results))

    @rpc
    async def PredictText(self, request: inference_pb2.PredictTextRequest,
                          context: grpc.aio.ServicerContext) -> inference_pb2.PredictTextResponse:
        check_texts(request.texts, self._limits)
        model, replicas = await self._replica_for(request.model, (training_pb2.TEXT_CLASSIFICATION,), "PredictText")
        if request.top_k < 0:
            raise InvalidArgument("top_k must be >= 0 (0 = every class)")
        results: list[TopClasses] = await self._ask(replicas.predict_text.remote(list(request.texts), request.top_k))
        return self._fit(inference_pb2.PredictTextResponse(model=model.ref, results=[
            inference_pb2.TextPrediction(top=scores(r.top)) for r in results]))


def _top_k(request: inference_pb2.ClassifyRequest) -> int:
    if request.top_k < 0:
        raise InvalidArgument("top_k must be >= 0 (0 = default 5)")
    return request.top_k or 5


def _data(request: Any) -> list[bytes]:
    """The image bytes of an image request, for the replicas."""
    return [image.data for image in request.images]
