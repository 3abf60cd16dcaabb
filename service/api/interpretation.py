"""The request checks of ScoreLabels and Explain that need the model or say how to fix the call; the work is
on the serving replicas."""

from __future__ import annotations

import math

from fineserve.v1 import inference_pb2, models_pb2, training_pb2
from fineserve_common.errors import InvalidArgument

EXPLAINABLE = (training_pb2.IMAGE_CLASSIFICATION, training_pb2.MULTI_LABEL_CLASSIFICATION, training_pb2.SEGMENTATION)


def label_threshold(request: inference_pb2.ScoreLabelsRequest) -> float | None:
    """The caller's threshold, or None for the model's tuned per-label thresholds."""
    if not request.HasField("threshold"):
        return None
    threshold = request.threshold
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise InvalidArgument(f"threshold must be in [0, 1] (got {threshold}); leave it unset for the tuned "
                              "thresholds")
    return threshold


def check_target(request: inference_pb2.ExplainRequest, model: models_pb2.Model) -> None:
    """Explain's target is a class or label of the model by name; empty = each image's top prediction."""
    if request.target and request.target not in model.classes:
        raise InvalidArgument(f"target {request.target!r} is not a class of model {model.ref.name}/"
                              f"{model.ref.version} (known: {', '.join(model.classes)}); leave it empty for the top "
                              "prediction")
