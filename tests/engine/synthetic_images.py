"""Synthetic, learnable images for fast engine tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from worker.engine import BaseWeights

# Small enough to train in about a second: 32 px crops of 24 px images, random body.
TINY = {"base": BaseWeights("none"), "image_size": 32, "batch_size": 8, "epochs": 1, "lr": 5e-3}


def stripes(vertical: bool, seed: int, size: int = 24) -> Image.Image:
    """Noisy stripes: orientation is the class, so the task is learnable and the pixels vary."""
    rng = np.random.default_rng(seed)
    line = (np.arange(size) // 3 % 2 * 200).astype(np.uint8)
    grid = np.tile(line, (size, 1)) if vertical else np.tile(line[:, None], (1, size))
    noise = rng.integers(0, 55, (size, size), dtype=np.uint8)
    return Image.fromarray(grid + noise)


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def write_class(folder: Path, vertical: bool, count: int, first_seed: int) -> None:
    """Mix of grey PNG and RGB JPEG files, with an upper-case extension, as real uploads have."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = stripes(vertical, first_seed + i)
        if i % 3 == 2:
            image.convert("RGB").save(folder / f"img{i}.JPG", format="JPEG", quality=95)
        else:
            image.save(folder / f"img{i}.png")
