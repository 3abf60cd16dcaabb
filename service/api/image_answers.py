"""The image RPCs' responses from the replicas' typed answers: one result per image, in request order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fineserve.v1 import common_pb2, inference_pb2, models_pb2
from fineserve_common.answers import Heatmap, LabelScores, Segmentation, TopClasses

M = TypeVar("M")
R = TypeVar("R")


def per_image(images: Sequence[common_pb2.Image], results: list[R],
              make: Callable[[common_pb2.Image, R], M]) -> list[M]:
    """make(image, its result) for each image; a replica that answered for another count of images is a bug."""
    return [make(image, result) for image, result in zip(images, results, strict=True)]


def scores(pairs: list[tuple[str, float]]) -> list[inference_pb2.ClassScore]:
    """(label, probability) pairs, best first."""
    return [inference_pb2.ClassScore(label=label, probability=p) for label, p in pairs]


def classify_response(model: models_pb2.Model, images: Sequence[common_pb2.Image],
                      results: list[TopClasses]) -> inference_pb2.ClassifyResponse:
    return inference_pb2.ClassifyResponse(model=model.ref, results=per_image(
        images, results, lambda image, r: inference_pb2.Classification(name=image.name, top=scores(r.top))))


def label_scores_response(model: models_pb2.Model, images: Sequence[common_pb2.Image],
                          results: list[LabelScores]) -> inference_pb2.ScoreLabelsResponse:
    def make(image: common_pb2.Image, r: LabelScores) -> inference_pb2.LabelScores:
        return inference_pb2.LabelScores(name=image.name, predicted=r.predicted, scores=[
            inference_pb2.LabelScore(label=label, score=score) for label, score in r.scores])

    return inference_pb2.ScoreLabelsResponse(model=model.ref, results=per_image(images, results, make))


def segment_response(model: models_pb2.Model, images: Sequence[common_pb2.Image],
                     results: list[Segmentation]) -> inference_pb2.SegmentResponse:
    def make(image: common_pb2.Image, r: Segmentation) -> inference_pb2.Segmentation:
        return inference_pb2.Segmentation(
            name=image.name, mask_png=r.mask_png, width=r.width, height=r.height,
            shares=[inference_pb2.ClassShare(label=label, share=share) for label, share in r.shares],
            probabilities=[inference_pb2.ProbabilityMap(label=label, png=png) for label, png in r.probabilities])

    return inference_pb2.SegmentResponse(model=model.ref, classes=model.classes,
                                         results=per_image(images, results, make))


def heatmaps_response(model: models_pb2.Model, images: Sequence[common_pb2.Image],
                      results: list[Heatmap]) -> inference_pb2.ExplainResponse:
    def make(image: common_pb2.Image, r: Heatmap) -> inference_pb2.Heatmap:
        return inference_pb2.Heatmap(name=image.name, target=r.target, grid_width=r.width,
                                     grid_height=r.height, grid=r.grid, overlay_png=r.overlay_png,
                                     probability=r.probability, layer=r.layer, warning=r.warning)

    return inference_pb2.ExplainResponse(model=model.ref, results=per_image(images, results, make))
