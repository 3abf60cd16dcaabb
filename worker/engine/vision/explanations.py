"""Grad-CAM explanations of a served image model: for each image, the map of the last convolutional stage
(ResNet layer4, the classifiers' body and the U-Net's encoder alike) for a class or label (or the top-scoring
one; for segmentation, the class covering most pixels), the target's probability, and an overlay PNG.

layer4 sees the input at 1/32 of its size, so a 32 px model's map is one cell: one colour, no localisation. Below
4x4 cells the map comes from an earlier stage instead (layer3 at 1/16, then layer2 at 1/8): less semantic, but
able to point; the answer names the stage and warns when even that is too coarse."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from ..images import decode_all, decode_tensors
from .classifier import ImageClassifier
from .grad_cam import class_score, grad_cam, region_score
from .heatmaps import overlay_png
from .segmenter import ImageSegmenter


@dataclass(frozen=True)
class Explanation:
    target: str
    """The class or label explained."""
    grid: torch.Tensor
    """(h, w) Grad-CAM map at its stage's resolution (see layer), in [0, 1]."""
    overlay_png: bytes
    """The map coloured over the input, at the input's size."""
    probability: float
    """The target's served probability (softmax, sigmoid), or for segmentation its share of the pixels."""
    layer: str
    """The body's stage the map was taken at."""
    warning: str = ""
    """Why the map may mislead (coarser than MIN_GRID even at the earliest stage tried); "" when it is fine."""


CAM_LAYERS = ("layer4", "layer3", "layer2")
"""The stages tried, last first: later stages see more of the image per cell and carry more of the class."""
MIN_GRID = 4
"""Cells per side under which a map cannot point at a part of the image."""


def stage_side(side: int, stage: int) -> int:
    """Cells per side of ResNet stage `stage`'s (1-4) map for an input side: the stem's two stride-2 steps and
    one per later stage each halve it, rounding up (torchvision's padded convolutions and max-pool)."""
    for _ in range(stage + 1):
        side = -(-side // 2)
    return side


def cam_layer(body: nn.Module, height: int, width: int) -> tuple[str, nn.Module, str]:
    """(name, module, warning) of the last stage of CAM_LAYERS whose map has at least MIN_GRID cells per side
    for an input of height x width, else the earliest one with a warning."""
    for name in CAM_LAYERS:
        grid = [stage_side(side, int(name[-1])) for side in (height, width)]
        if min(grid) >= MIN_GRID:
            return name, getattr(body, name), ""
    return name, getattr(body, name), (
        f"the map has only {grid[0]}x{grid[1]} cells even at {name} for a {height}x{width} px input: it cannot "
        "localise; a model trained at a larger image_size explains better")


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
    if not images:
        return []
    pictures, batch = _decoded(model, images)
    batch = batch.to(model.device)
    indices = torch.full((len(images),), index)
    segmenting = isinstance(model, ImageSegmenter)
    score = region_score(indices) if segmenting else class_score(indices)
    layer_name, layer, warning = cam_layer(model.model.body, *batch.shape[-2:])
    maps, output = grad_cam(model.model, layer, batch, score)
    if index >= 0:
        chosen = torch.full((len(images),), index)
    elif segmenting:
        chosen = torch.mode(output.argmax(dim=1).flatten(1), dim=1).values
    else:
        chosen = output.argmax(dim=1)
    chosen = chosen.cpu()
    if segmenting:
        probability = (output.argmax(dim=1).flatten(1).cpu() == chosen[:, None]).double().mean(dim=1)
    else:
        probability = model.activate(output.float().cpu()).gather(1, chosen[:, None]).squeeze(1)
    maps = maps.cpu()
    return [
        Explanation(model.classes[c], grid, overlay_png(image, grid, (0, 0, *image.size) if segmenting else None),
                    float(p), layer_name, warning)
        for c, p, grid, image in zip(chosen.tolist(), probability.tolist(), maps, pictures, strict=True)
    ]


def _decoded(model: ImageClassifier | ImageSegmenter, images: list[bytes]) -> tuple[list[Image.Image], torch.Tensor]:
    """(the pictures the overlays are drawn on, the model's input batch), decoded as the model's Classify or
    Segment calls are: on decode_device when set (decode_jpeg on a CUDA replica), else by PIL on this thread."""
    if model.decode_device is None:
        decoded = decode_all(images, lambda image: (image, model.transform(image)))
        return [image for image, _ in decoded], torch.stack([x for _, x in decoded])
    tensors = decode_tensors(images, model.decode_device)
    return [Image.fromarray(x.permute(1, 2, 0).cpu().numpy()) for x in tensors], model.input_of(tensors)
