"""What an input image may become, judged from its header before any pixel is decoded. The front door
(service/images.py) refuses such an image at the door; the engine (worker/engine/images.py) refuses it again
in the serving replicas and skips it in training data, so every path applies this same rule."""

from __future__ import annotations

MAX_ASPECT_RATIO = 20
"""Long side over short side. Every model resizes an image's short side to its input size before cropping,
so a 1x300000 strip (370 bytes of PNG, under any pixel limit) would become input size x 67 million pixels;
with this bound no image becomes more than MAX_ASPECT_RATIO x input size² pixels. 20:1 admits panoramas."""


def aspect_problem(width: int, height: int) -> str | None:
    """Why an image of width x height may not be resized for a model, or None when it may."""
    short, long = min(width, height), max(width, height)
    if short < 1:
        return f"{width}x{height} has no pixels"
    if long > MAX_ASPECT_RATIO * short:
        return (f"{width}x{height} has an aspect ratio of {long / short:.0f}:1, over the limit of "
                f"{MAX_ASPECT_RATIO}:1 (models resize the short side to their input size); crop it to at most that")
    return None
