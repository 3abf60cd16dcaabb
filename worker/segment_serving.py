"""The segmentation half of the serving replica: several callers' images in one forward pass per model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fineserve_common.answers import Refused, Segmentation
from fineserve_common.errors import InvalidArgument


def segment_calls(calls: list[tuple[Any, list[bytes], bool, int]],
                  on_pass: Callable[[int], None] = lambda images: None) -> list[list[Segmentation] | Refused]:
    """calls: (ImageSegmenter, images, include_probabilities, index of images[0] in its request); on_pass(n)
    is told of each forward pass of n images. Each answer is one Segmentation per image or a Refused; a bad
    image fails only its own call. Inputs are resized to the model's input size, so images of any sizes batch
    together; each mask comes back at its own image's size."""
    import torch

    from worker.engine import InvalidImage

    answers: list[list[Segmentation] | Refused] = [[] for _ in calls]
    by_model: dict[int, list[tuple[int, torch.Tensor, list[tuple[int, int]]]]] = {}
    for i, (model, images, _, offset) in enumerate(calls):
        try:
            batch, sizes = model.preprocess(images)
        except InvalidImage as e:
            answers[i] = Refused.of(InvalidArgument(f"image {offset + e.index}: {e.reason}"))
            continue
        by_model.setdefault(id(model), []).append((i, batch, sizes))
    for group in by_model.values():
        model = calls[group[0][0]][0]
        logits = model.predict_logits(torch.cat([x for _, x, _ in group]))
        on_pass(len(logits))
        for i, x, sizes in group:
            part, logits = logits[: len(x)], logits[len(x) :]
            answers[i] = [model.segmentation(one, size, calls[i][2]) for one, size in zip(part, sizes, strict=True)]
    return answers
