"""The inference area of :class:`~fineserve_client.Client` and :class:`~fineserve_client.AsyncClient`: classify,
score labels, explain and segment images, recommend items, predict table rows and classify texts. Inputs go in
batches of at most ``batch_size`` per request; results come back one per input, in order, as the dataclasses of
``results``, ``interpretation``, ``segmentation`` and ``embeddings``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fineserve.v1 import common_pb2, inference_pb2

from .arguments import model_ref
from .connection import Call, Plan, operation
from .embeddings import (
    Recommendations,
    TabularPrediction,
    recommend_request,
    recommendations,
    tabular_predictions,
    tabular_request,
)
from .errors import Internal
from .interpretation import Heatmap, LabelScores, overlay_path
from .results import Classification, answered, top_of
from .segmentation import Segmentation

Images = Sequence[str | os.PathLike[str] | bytes]
"""File paths (the name is the path as given) or encoded image bytes (named ``bytes[i]``)."""
ModelSpec = str | common_pb2.ModelRef
"""A name (with ``version``; 0: the latest), ``"name/version"`` or a ``ModelRef``."""
_BATCH = 64
"""Inputs per request by default: large enough to fill a replica's batch, small enough for the message limit."""
_ONE_INPUT = (str, bytes, bytearray, memoryview, os.PathLike)
"""What a caller passes by mistake for a list of images: iterating it would send its characters or bytes."""


def _image(item: Any, index: int) -> common_pb2.Image:
    if isinstance(item, common_pb2.Image):
        return item
    if isinstance(item, (str, os.PathLike)):
        return common_pb2.Image(data=Path(item).read_bytes(), name=os.fspath(item))
    if isinstance(item, (bytes, bytearray, memoryview)):
        return common_pb2.Image(data=bytes(item), name=f"bytes[{index}]")
    raise TypeError(f"image {index}: expected a path or bytes, not {type(item).__name__}")


class InferenceArea:
    @staticmethod
    def _batches(
        items: Sequence[Any],
        batch_size: int,
        method: str,
        request_for: Callable[[list[Any]], Any],
        noun: str,
        prepare: Callable[[Any, int], Any] = lambda item, index: item,
    ) -> Plan[list[tuple[int, Any, Any, Any]]]:
        """Send ``prepare``d items in requests of at most ``batch_size``; return (index, item sent, its result,
        the response) per item. Every item is prepared before the first request, so a bad one sends nothing."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        prepared = [prepare(item, i) for i, item in enumerate(items)]
        out: list[tuple[int, Any, Any, Any]] = []
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size]
            response = yield Call("inference", method, request_for(batch))
            if len(response.results) != len(batch):
                raise Internal(f"the server returned {len(response.results)} results for {len(batch)} {noun}")
            out.extend((start + offset, sent, result, response)
                       for offset, (sent, result) in enumerate(zip(batch, response.results, strict=True)))
        return out

    def _image_batches(
        self, images: Images, batch_size: int, method: str,
        request_for: Callable[[list[common_pb2.Image]], Any],
    ) -> Plan[list[tuple[int, common_pb2.Image, Any, Any]]]:
        if isinstance(images, _ONE_INPUT):
            raise TypeError("images must be a list of paths or bytes")
        return (yield from self._batches(images, batch_size, method, request_for, "images", _image))

    @operation
    def classify(
        self, model: ModelSpec, images: Images, top_k: int = 5, version: int = 0, *, batch_size: int = _BATCH
    ) -> Plan[list[Classification]]:
        """Classify images with a single-label model; one :class:`Classification` per image, in order.

        ``images`` items are file paths or encoded image bytes. ``model`` is a name (``version`` 0: the
        latest) or ``"name/version"``. Requests carry at most ``batch_size`` images each.
        """
        if isinstance(images, _ONE_INPUT):
            raise TypeError("images must be a list; use classify_one for a single image")
        ref = model_ref(model, version)
        batches = yield from self._image_batches(
            images, batch_size, "Classify",
            lambda batch: inference_pb2.ClassifyRequest(model=ref, images=batch, top_k=top_k))
        return [Classification(name=result.name or sent.name, top=top_of(result.top), model=answered(response),
                               raw=result)
                for _, sent, result, response in batches]

    @operation
    def classify_one(
        self, model: ModelSpec, image: str | os.PathLike[str] | bytes, top_k: int = 5, version: int = 0
    ) -> Plan[Classification]:
        """Classify one image (a path or bytes)."""
        return (yield from InferenceArea.classify.plan(self, model, [image], top_k=top_k, version=version))[0]

    @operation
    def score_labels(
        self, model: ModelSpec, images: Images, threshold: float | None = None, version: int = 0, *,
        batch_size: int = _BATCH,
    ) -> Plan[list[LabelScores]]:
        """Score every label of a multi-label model for each image; one :class:`LabelScores` per image.

        ``predicted`` holds the labels over the thresholds tuned at training time, or over ``threshold``
        (0-1) for every label when given.
        """
        ref = model_ref(model, version)

        def request_for(batch: list[common_pb2.Image]) -> inference_pb2.ScoreLabelsRequest:
            request = inference_pb2.ScoreLabelsRequest(model=ref, images=batch)
            if threshold is not None:
                request.threshold = threshold
            return request

        batches = yield from self._image_batches(images, batch_size, "ScoreLabels", request_for)
        return [LabelScores(name=r.name or sent.name, scores={s.label: s.score for s in r.scores},
                            predicted=list(r.predicted), model=answered(response), raw=r)
                for _, sent, r, response in batches]

    @operation
    def explain(
        self, model: ModelSpec, images: Images, target: str = "", version: int = 0, *, save_overlays: bool = False,
        batch_size: int = _BATCH,
    ) -> Plan[list[Heatmap]]:
        """Grad-CAM heatmaps for ``target`` (a class or label; ``""``: each image's top prediction); one
        :class:`Heatmap` per image. With ``save_overlays``, each path input's overlay PNG is written next to
        it, by target (``photo.jpg`` -> ``photo.dog.gradcam.png``); ``Heatmap.save_overlay`` writes one anywhere.
        """
        ref = model_ref(model, version)
        results: list[Heatmap] = []
        batches = yield from self._image_batches(
            images, batch_size, "Explain",
            lambda batch: inference_pb2.ExplainRequest(model=ref, images=batch, target=target))
        for _, sent, r, response in batches:
            w = r.grid_width
            grid = [list(r.grid[row * w:(row + 1) * w]) for row in range(r.grid_height)]
            results.append(Heatmap(r.name or sent.name, r.target, grid, r.overlay_png, answered(response),
                                   probability=r.probability, layer=r.layer, warning=r.warning))
        if save_overlays:
            for item, heatmap in zip(images, results, strict=True):
                if isinstance(item, (str, os.PathLike)):
                    heatmap.save_overlay(overlay_path(item, heatmap.target))
        return results

    @operation
    def segment(
        self, model: ModelSpec, images: Images, version: int = 0, *, probabilities: bool = False,
        save_to: str | os.PathLike[str] | None = None, batch_size: int = _BATCH,
    ) -> Plan[list[Segmentation]]:
        """Segment images with a segmentation model; one :class:`Segmentation` per image, in order.

        Each mask is at its image's size. ``probabilities`` also fetches per-class probability maps (large).
        ``save_to`` writes each image's mask and colour overlay there (the overlay needs Pillow).
        """
        ref = model_ref(model, version)
        results: list[Segmentation] = []
        batches = yield from self._image_batches(images, batch_size, "Segment", lambda batch: (
            inference_pb2.SegmentRequest(model=ref, images=batch, include_probabilities=probabilities)))
        for _, sent, result, response in batches:
            seg = Segmentation.from_proto(result, list(response.classes), sent.name, answered(response))
            if save_to is not None:
                seg.save(save_to, sent.data)
            results.append(seg)
        return results

    @operation
    def predict_text(
        self, model: ModelSpec, texts: str | Sequence[str], top_k: int = 0, version: int = 0, *,
        batch_size: int = _BATCH,
    ) -> Plan[list[Classification]]:
        """Classify texts with a TEXT_CLASSIFICATION (ULMFiT) model: one :class:`Classification` per text, in
        order, named ``text[i]``, with ``top_k`` labels (0: every label) most probable first. An empty text is
        ``InvalidArgument``."""
        items = [texts] if isinstance(texts, str) else list(texts)
        ref = model_ref(model, version)
        batches = yield from self._batches(
            items, batch_size, "PredictText",
            lambda batch: inference_pb2.PredictTextRequest(model=ref, texts=batch, top_k=top_k), "texts")
        return [Classification(name=f"text[{i}]", top=top_of(result.top), model=answered(response), raw=result)
                for i, _, result, response in batches]

    @operation
    def recommend(
        self,
        model: ModelSpec,
        user_id: str | None = None,
        *,
        users: Sequence[str] | None = None,
        similar_to: str | None = None,
        pairs: Sequence[tuple[str, str]] | None = None,
        top_by_bias: bool = False,
        k: int = 10,
        popularity_fallback: bool = False,
        version: int = 0,
    ) -> Plan[Recommendations]:
        """Ask a collaborative-filtering model one of: the top-``k`` unrated items for ``user_id`` (or for each of
        ``users``, one batched call), the ``k`` items most similar to ``similar_to``, predicted ratings of
        ``pairs`` of (user id, item id), or the ``k`` items with the highest learnt bias (``top_by_bias``).
        An unknown id raises ``NotFound`` unless ``popularity_fallback`` asks for popular items instead."""
        request = recommend_request(model_ref(model, version), user_id, users, similar_to, pairs, top_by_bias, k,
                                    popularity_fallback)
        return recommendations((yield Call("inference", "Recommend", request)))

    @operation
    def predict_tabular(
        self, model: ModelSpec, rows: Sequence[Mapping[str, Any]], top_k: int = 5, version: int = 0
    ) -> Plan[list[TabularPrediction]]:
        """Predict rows given as column -> value mappings with a tabular model; a missing column or ``None`` is a
        missing value, an unseen category uses the model's "unknown" embedding, an unknown column is refused."""
        request = tabular_request(model_ref(model, version), rows, top_k)
        return tabular_predictions((yield Call("inference", "PredictTabular", request)))
