"""Pixel pipelines on the CPU: uint8 squares for training (augmented per batch), one deterministic centre crop
for validation and inference."""

from __future__ import annotations

from collections.abc import Sequence

from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


PRESIZE = 1.25
"""Training images are kept as squares this much larger than the stage's size; the batch's random-resized crop,
rotation and zoom (augment.py) then sample the final size from them."""


def presize(image_size: int) -> int:
    return round(image_size * PRESIZE)


def train_transform(image_size: int) -> transforms.Compose:
    """uint8 squares at presize(image_size): the short side scaled, then the centre crop. The random
    transforms run per batch on the training device (augment.py)."""
    side = presize(image_size)
    return transforms.Compose([transforms.Resize(side), transforms.CenterCrop(side), transforms.PILToTensor()])


def valid_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> transforms.Compose:
    """Deterministic, so validation metrics and served predictions are reproducible."""
    return transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
