"""ScoreLabels and Explain: request checks at the front door, the work on the serving replicas."""

from __future__ import annotations

import math
from typing import Any

from control.store import Store
from fineserve.v1 import inference_pb2, training_pb2
from service.api.models import resolve_model_for
from service.config import Limits
from service.errors import invalid
from service.images import check_images
from service.replica_calls import ask

EXPLAINABLE = (training_pb2.IMAGE_CLASSIFICATION, training_pb2.MULTI_LABEL_CLASSIFICATION, training_pb2.SEGMENTATION)


async def score_labels(
    request: inference_pb2.ScoreLabelsRequest,
    store: Store,
    limits: Limits,
    replicas: Any,
) -> inference_pb2.ScoreLabelsResponse:
    """replicas(path) is the serving handle bound to the model directory."""
    model, path = await resolve_model_for(store, request.model, "ScoreLabels",
                                          (training_pb2.MULTI_LABEL_CLASSIFICATION,))
    check_images(request.images, limits)
    threshold = request.threshold if request.HasField("threshold") else None
    if threshold is not None and not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise invalid(f"threshold must be in [0, 1] (got {threshold}); leave it unset for the tuned thresholds")
    answer = await ask(replicas(path).score_labels.remote([im.data for im in request.images], threshold))
    return inference_pb2.ScoreLabelsResponse(
        model=model.ref,
        results=[
            inference_pb2.LabelScores(
                name=image.name,
                predicted=result["predicted"],
                scores=[inference_pb2.LabelScore(label=label, score=score) for label, score in result["scores"]],
            )
            for image, result in zip(request.images, answer["results"], strict=True)
        ],
    )


async def explain(
    request: inference_pb2.ExplainRequest,
    store: Store,
    limits: Limits,
    replicas: Any,
) -> inference_pb2.ExplainResponse:
    """Grad-CAM for request.target (a class or label by name; empty = each image's top prediction)."""
    model, path = await resolve_model_for(store, request.model, "Explain", EXPLAINABLE)
    check_images(request.images, limits)
    if request.target and request.target not in model.classes:
        raise invalid(
            f"target {request.target!r} is not a class of model {model.ref.name}/{model.ref.version} "
            f"(known: {', '.join(model.classes)}); leave it empty for the top prediction"
        )
    answer = await ask(replicas(path).explain.remote([im.data for im in request.images], request.target))
    return inference_pb2.ExplainResponse(
        model=model.ref,
        results=[
            inference_pb2.Heatmap(
                name=image.name,
                target=r["target"],
                grid_width=r["width"],
                grid_height=r["height"],
                grid=r["grid"],
                overlay_png=r["overlay_png"],
            )
            for image, r in zip(request.images, answer["results"], strict=True)
        ],
    )
