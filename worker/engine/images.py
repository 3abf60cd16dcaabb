"""Image decoding shared by training and inference, so both see the same pixels and the same limits."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

from .errors import InvalidImage

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})


def is_image_path(path: Path) -> bool:
    """Data sets are recognised by extension (case-insensitive), so stray files are ignored, not errors."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _open(data: bytes, index: int) -> Image.Image:
    """Parse the header and enforce Image.MAX_IMAGE_PIXELS before any pixel is decoded."""
    if not data:
        raise InvalidImage(index, "empty image data")
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as e:  # PIL signals malformed input with many exception types
        raise InvalidImage(index, f"cannot decode image: {e}") from e
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise InvalidImage(index, f"{image.width}x{image.height} pixels is over the limit of {limit}")
    return image


def check_image(data: bytes, index: int = 0) -> None:
    """Cheap header-only check, used to screen a data set before training starts."""
    _open(data, index)


def decode_image(data: bytes, index: int = 0) -> Image.Image:
    """Decode to an RGB image (grey, palette and alpha images converted; EXIF rotation applied).

    Raises InvalidImage(index, reason) for anything PIL cannot fully decode, including truncated files.
    """
    image = _open(data, index)
    try:
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")
    except Exception as e:  # PIL signals malformed input with many exception types
        raise InvalidImage(index, f"cannot decode image: {e}") from e
