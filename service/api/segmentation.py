"""Segment's response from the replicas' plain answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fineserve.v1 import common_pb2, inference_pb2, models_pb2


def segment_response(
    model: models_pb2.Model, images: Sequence[common_pb2.Image], results: list[dict[str, Any]]
) -> inference_pb2.SegmentResponse:
    """results: one engine Segmentation (as a dict) per image, in request order."""
    return inference_pb2.SegmentResponse(
        model=model.ref,
        classes=model.classes,
        results=[
            inference_pb2.Segmentation(
                name=image.name,
                mask_png=r["mask_png"],
                width=r["width"],
                height=r["height"],
                shares=[inference_pb2.ClassShare(label=label, share=share) for label, share in r["shares"]],
                probabilities=[inference_pb2.ProbabilityMap(label=label, png=png) for label, png in r["probabilities"]],
            )
            for image, r in zip(images, results, strict=True)
        ],
    )
