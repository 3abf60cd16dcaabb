"""Synthetic images for the Grad-CAM localisation test: one coloured disk (its colour is the class) at a random
position on clutter: grey disks of the same sizes, and thin lines in the classes' colours, so that neither
shape nor the mere presence of a colour gives the class away; only a large patch of it does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 128
RADIUS = 28
"""The object's box (56 px) is wider than the 32 px stride of ResNet's last stage: whichever cell of the
4x4 map holds the object's centre, that cell's centre lies inside the box. A random map's peak lands in the
box about (56/128)^2 = 19% of the time."""
COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220), "green": (40, 200, 60)}
CLASSES = tuple(COLOURS)

Box = tuple[int, int, int, int]


def cluttered(colour: str, seed: int, size: int = SIZE) -> tuple[Image.Image, Box]:
    """(size x size image, object box as left, top, right, bottom) with the object at a uniformly random
    position."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 190, (size, size, 1), dtype=np.uint8).repeat(3, axis=2)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 10))):
        grey = int(rng.integers(0, 256))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            r = int(rng.integers(6, RADIUS + 1))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(grey,) * 3)
        else:
            line_colour = COLOURS[CLASSES[int(rng.integers(len(CLASSES)))]]
            draw.line((x, y, *(int(v) for v in rng.integers(0, size, 2))), fill=line_colour, width=2)
    cx, cy = (int(v) for v in rng.integers(RADIUS, size - RADIUS, 2))
    box = (cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS)
    draw.ellipse(box, fill=COLOURS[colour])
    return image, box


def write_split(root: Path, per_class: int, first_seed: int) -> list[tuple[Path, str, Box]]:
    """root/<colour>/<n>.png for each class; returns (path, class, box) per image."""
    written = []
    for c, colour in enumerate(CLASSES):
        (root / colour).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image, box = cluttered(colour, first_seed + c * 10_000 + i)
            path = root / colour / f"{i}.png"
            image.save(path)
            written.append((path, colour, box))
    return written
