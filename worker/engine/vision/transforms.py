"""Pixel pipelines: random crops for training, one deterministic centre crop for validation and inference."""

from __future__ import annotations

from collections.abc import Sequence

from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                    flip: bool) -> transforms.Compose:
    """Resize first so RandomResizedCrop's 75-100% area keeps most of the object at any source size."""
    steps = [transforms.Resize(image_size), transforms.RandomResizedCrop(image_size, scale=(0.75, 1.0))]
    if flip:
        steps.append(transforms.RandomHorizontalFlip())
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def valid_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> transforms.Compose:
    """Deterministic, so validation metrics and served predictions are reproducible."""
    return transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
