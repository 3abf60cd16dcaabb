"""The segmentation half of the serving replica: several callers' images in one forward pass per model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fineserve_common.answers import Segmentation


def segment_calls(calls: list[tuple[Any, list[tuple[Any, tuple[int, int]]], bool, int]],
                  on_pass: Callable[[int], None] = lambda images: None) -> list[list[Segmentation]]:
    """calls: (ImageSegmenter, [(preprocessed image, its (height, width))], include_probabilities, index of the
    first image in its request); on_pass(n) is told of each forward pass of n images. The images were decoded
    and resized to the model's input size by the caller's own call (ImageSegmenter.preprocess), so images of any
    sizes batch together and one caller's large images never hold up this shared pass; each mask comes back at
    its own image's size."""
    import torch

    answers: list[list[Segmentation]] = [[] for _ in calls]
    by_model: dict[int, list[int]] = {}
    for i, (model, images, *_) in enumerate(calls):
        if images:
            by_model.setdefault(id(model), []).append(i)
    for group in by_model.values():
        model = calls[group[0]][0]
        logits = model.predict_logits(torch.stack([x for i in group for x, _ in calls[i][1]]))
        on_pass(len(logits))
        for i in group:
            images = calls[i][1]
            part, logits = logits[: len(images)], logits[len(images) :]
            answers[i] = [model.segmentation(one, size, calls[i][2])
                          for one, (_, size) in zip(part, images, strict=True)]
    return answers
