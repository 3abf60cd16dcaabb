"""The front door's cheap look at input images: format, pixel count and shape from the header, nothing decoded.

Decompression bombs (a few KB of PNG that inflate to gigapixels) are refused here, before a replica spends
memory on them; the replicas enforce the same limit again while decoding (PIL's Image.MAX_IMAGE_PIXELS,
which the serving deployment sets from the same setting). So are strips that a model's resize would inflate
(fineserve_common.image_limits), which the replicas also refuse. Only the formats the API documents are parsed,
which keeps PIL's rarer, more fragile format plugins away from callers' bytes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

from PIL import Image

from fineserve.v1 import common_pb2
from fineserve_common.errors import InvalidArgument, ResourceExhausted
from fineserve_common.image_limits import aspect_problem
from service.config import Limits

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")


def set_pixel_limit(max_pixels: int) -> None:
    """PIL refuses (DecompressionBombError) past twice this and warns past it; we refuse past it."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def check_header(data: bytes, index: int, max_pixels: int) -> None:
    if not data:
        raise InvalidArgument(f"image {index} has no data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        width = height = -1
    except Exception as e:  # PIL signals malformed input with many exception types
        raise InvalidArgument(f"image {index}: cannot decode image ({', '.join(FORMATS)} expected): {e}") from e
    if width < 0 or width * height > max_pixels:
        size = "its size" if width < 0 else f"{width}x{height} = {width * height} pixels"
        raise ResourceExhausted(f"image {index}: {size} is over max_image_pixels={max_pixels}")
    if problem := aspect_problem(width, height):
        raise InvalidArgument(f"image {index}: {problem}")


def _check_count(count: int, limit: int, noun: str) -> None:
    """At least one and at most max_<noun>s_per_request inputs of a request."""
    if not count:
        raise InvalidArgument(f"{noun}s is empty: send at least one {noun}")
    if count > limit:
        raise ResourceExhausted(f"{count} {noun}s exceed max_{noun}s_per_request={limit}")


def check_images(images: Sequence[common_pb2.Image], limits: Limits) -> None:
    """Count, presence and header of every image of a request (RESOURCE_EXHAUSTED / INVALID_ARGUMENT)."""
    _check_count(len(images), limits.max_images_per_request, "image")
    for i, image in enumerate(images):
        check_header(image.data, i, limits.max_image_pixels)


def check_texts(texts: Sequence[str], limits: Limits) -> None:
    _check_count(len(texts), limits.max_texts_per_request, "text")
    for i, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise ResourceExhausted(f"text {i} has {len(text)} characters, over max_text_chars={limits.max_text_chars}")
        if not text.strip():
            raise InvalidArgument(f"text {i} is empty")
