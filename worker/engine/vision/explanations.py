"""Grad-CAM explanations of a served image model: for each image, the map of the last convolutional stage
(ResNet layer4, the classifiers' body and the U-Net's encoder alike) for a class or label (or the top-scoring
one; for segmentation, the class covering most pixels), and an overlay PNG."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..images import decode_all
from .classifier import ImageClassifier
from .grad_cam import class_score, grad_cam, region_score
from .heatmaps import overlay_png
from .segmenter import ImageSegmenter


@dataclass(frozen=True)
class Explanation:
    target: str
    """The class or label explained."""
    grid: torch.Tensor
    """(h, w) Grad-CAM map at the last stage's resolution, in [0, 1]."""
    overlay_png: bytes
    """The map coloured over the input, at the input's size."""


def target_index(classes: list[str], target: str) -> int:
    """Index of a class or label by name; "" = -1, the top-scoring one of each image."""
    if not target:
        return -1
    if target not in classes:
        raise ValueError(f"unknown target {target!r}; the model knows {', '.join(classes)}")
    return classes.index(target)


def explain(model: ImageClassifier | ImageSegmenter, images: list[bytes], target: str = "") -> list[Explanation]:
    """One batched forward and backward pass for every image; InvalidImage names an undecodable image and
    ValueError an unknown target. A segmentation target is the class's predicted region (region_score)."""
    index = target_index(model.classes, target)
    decoded = decode_all(images, lambda image: (image, model.transform(image)))
    if not decoded:
        return []
    batch = torch.stack([x for _, x in decoded]).to(model.device)
    indices = torch.full((len(decoded),), index)
    segmenting = isinstance(model, ImageSegmenter)
    score = region_score(indices) if segmenting else class_score(indices)
    maps, output = grad_cam(model.model, model.model.body.layer4, batch, score)
    if index >= 0:
        chosen = [index] * len(decoded)
    elif segmenting:
        chosen = torch.mode(output.argmax(dim=1).flatten(1), dim=1).values.tolist()
    else:
        chosen = output.argmax(dim=1).tolist()
    maps = maps.cpu()
    return [
        Explanation(model.classes[c], grid, overlay_png(image, grid, (0, 0, *image.size) if segmenting else None))
        for c, grid, (image, _) in zip(chosen, maps, decoded, strict=True)
    ]
