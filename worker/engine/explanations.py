"""Grad-CAM explanations of a served image classifier (single- or multi-label): for each image, the map of
the last convolutional stage for a class or label (or the top-scoring one), and an overlay PNG."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grad_cam import class_score, grad_cam
from .heatmap_images import overlay_png
from .images import decode_image
from .inference import ImageClassifier


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


def explain(model: ImageClassifier, images: list[bytes], target: str = "") -> list[Explanation]:
    """One batched forward and backward pass for every image; InvalidImage names an undecodable image and
    ValueError an unknown target."""
    index = target_index(model.classes, target)
    decoded = [decode_image(data, i) for i, data in enumerate(images)]
    if not decoded:
        return []
    batch = torch.stack([model.transform(image) for image in decoded]).to(model.device)
    indices = torch.full((len(decoded),), index)
    maps, output = grad_cam(model.model, model.model.body.layer4, batch, class_score(indices))
    chosen = output.argmax(dim=1).tolist() if index < 0 else [index] * len(decoded)
    maps = maps.cpu()
    return [
        Explanation(model.classes[c], grid, overlay_png(image, grid))
        for c, grid, image in zip(chosen, maps, decoded, strict=True)
    ]
