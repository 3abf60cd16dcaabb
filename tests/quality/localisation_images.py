"""Synthetic images for the Grad-CAM localisation test: one coloured disk (its colour is the class) at a random
position on clutter: grey disks of the same sizes, and thin lines in the classes' colours, so that neither
shape nor the mere presence of a colour gives the class away; only a large patch of it does. Held-out images may
hold two objects of different classes, where a map that does not depend on the class explained cannot point at
both."""

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


def _clutter(rng: np.random.Generator, size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
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
    return image, draw


def _object(rng: np.random.Generator, size: int) -> Box:
    cx, cy = (int(v) for v in rng.integers(RADIUS, size - RADIUS, 2))
    return cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS


def cluttered(colour: str, seed: int, size: int = SIZE) -> tuple[Image.Image, Box]:
    """(size x size image, object box as left, top, right, bottom) with the object at a uniformly random
    position."""
    rng = np.random.default_rng(seed)
    image, draw = _clutter(rng, size)
    box = _object(rng, size)
    draw.ellipse(box, fill=COLOURS[colour])
    return image, box


def two_objects(colours: tuple[str, str], seed: int, size: int = SIZE) -> tuple[Image.Image, tuple[Box, Box]]:
    """An image holding a disk of each of two colours, their centres at least 2 radii + 8 px apart (so the disks
    do not touch and fall in different cells of a 4x4 map), and their boxes in the colours' order."""
    rng = np.random.default_rng(seed)
    image, draw = _clutter(rng, size)
    first, second = _object(rng, size), _object(rng, size)
    while (first[0] - second[0]) ** 2 + (first[1] - second[1]) ** 2 < (2 * RADIUS + 8) ** 2:
        first, second = _object(rng, size), _object(rng, size)  # both: near the middle, no second one fits
    for colour, box in zip(colours, (first, second), strict=True):
        draw.ellipse(box, fill=COLOURS[colour])
    return image, (first, second)


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


def write_pairs(root: Path, per_pair: int, first_seed: int) -> list[tuple[Path, tuple[str, str], tuple[Box, Box]]]:
    """root/<n>.png holding two objects of different classes, per_pair images for each pair of classes; returns
    (path, (class, class), (box, box)) per image."""
    root.mkdir(parents=True, exist_ok=True)
    written = []
    pairs = [(a, b) for a in CLASSES for b in CLASSES if a < b]
    for p, pair in enumerate(pairs):
        for i in range(per_pair):
            image, boxes = two_objects(pair, first_seed + p * 10_000 + i)
            path = root / f"{len(written)}.png"
            image.save(path)
            written.append((path, pair, boxes))
    return written
