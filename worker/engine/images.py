"""Image decoding shared by training and inference, so both see the same pixels and the same limits."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image, ImageOps

from fineserve_common.image_limits import aspect_problem

from .errors import InvalidImage

T = TypeVar("T")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})


def is_image_path(path: Path) -> bool:
    """Data sets are recognised by extension (case-insensitive), so stray files are ignored, not errors."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _open(data: bytes, index: int) -> Image.Image:
    """Parse the header and enforce Image.MAX_IMAGE_PIXELS and the aspect-ratio bound (what a resize may make
    of the image) before any pixel is decoded."""
    if not data:
        raise InvalidImage(index, "empty image data")
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as e:  # PIL signals malformed input with many exception types
        raise InvalidImage(index, f"cannot decode image: {e}") from e
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise InvalidImage(index, f"{image.width}x{image.height} pixels is over the limit of {limit}")
    if problem := aspect_problem(image.width, image.height):
        raise InvalidImage(index, problem)
    return image


def set_pixel_limit(pixels: int | None) -> None:
    """Refuse images past `pixels` (width x height, from the header, before decoding) in this process, as the
    front door does: the server's max_image_pixels, in its serving replicas and in its jobs. None keeps PIL's
    default (89M pixels, and only a warning up to twice that)."""
    if pixels:
        Image.MAX_IMAGE_PIXELS = pixels


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


@functools.cache
def _decoders(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="decode")


def decode_all(images: list[bytes], prepare: Callable[[Image.Image], T]) -> list[T]:
    """prepare(decode_image(data, i)) of every image, in order, on torch's CPU threads.

    PIL's decoders and resampling release the GIL, so a batch decodes in parallel (1.6x on 2 threads here); a
    served batch on a GPU is otherwise bound by decoding on one core. Raises InvalidImage for the first bad
    image by index, as a loop would.
    """
    threads = torch.get_num_threads()
    if len(images) < 2 or threads < 2:
        return [prepare(decode_image(data, i)) for i, data in enumerate(images)]
    return list(_decoders(threads).map(lambda item: prepare(decode_image(item[1], item[0])), enumerate(images)))


# EXIF orientation (tag 0x0112) -> how to turn a (C, H, W) tensor upright, as PIL's exif_transpose does.
_EXIF_ORIENTATION = 0x0112
_ORIENT: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    2: lambda x: x.flip(-1),
    3: lambda x: x.flip(-2, -1),
    4: lambda x: x.flip(-2),
    5: lambda x: x.transpose(-2, -1),
    6: lambda x: x.rot90(-1, (-2, -1)),
    7: lambda x: x.flip(-2, -1).transpose(-2, -1),
    8: lambda x: x.rot90(1, (-2, -1)),
}


def _device_decodable(image: Image.Image) -> bool:
    """JPEGs whose colours decode_jpeg converts to RGB the same on every device (not CMYK/YCCK)."""
    return image.format == "JPEG" and image.mode in ("RGB", "L")


def _as_tensor(data: bytes | torch.Tensor) -> torch.Tensor:
    return data if isinstance(data, torch.Tensor) else torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_jpegs(datas: list[bytes | torch.Tensor], device: torch.device | str) -> list[torch.Tensor]:
    """uint8 (3, H, W) RGB of each JPEG, upright (EXIF), on `device`, decoded as one batch by torchvision's
    decode_jpeg (nvJPEG on CUDA: a GPU replica is otherwise bound by decoding on its CPU cores).

    The header checks (pixel limit, aspect ratio, format) run first, before any pixel is decoded; InvalidImage
    names the first bad image by index.
    """
    headers = []
    for i, data in enumerate(datas):
        image = _open(data.numpy().tobytes() if isinstance(data, torch.Tensor) else data, i)
        if not _device_decodable(image):
            raise InvalidImage(i, f"{image.format} {image.mode} is not a JPEG that decode_jpeg takes")
        headers.append(image)
    return _decode_checked(datas, headers, device)


def _decode_checked(datas: list[bytes | torch.Tensor], headers: list[Image.Image],
                    device: torch.device | str) -> list[torch.Tensor]:
    """decode_jpegs after the header checks. decode_jpeg ignores EXIF on CUDA, so the orientation is applied
    here, the same on every device."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not datas:
        return []
    tensors = [_as_tensor(d) for d in datas]
    try:
        decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # one bad image fails the batch: find it
        decoded = []
        for i, t in enumerate(tensors):
            try:
                decoded.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
            except RuntimeError as e:
                raise InvalidImage(i, f"cannot decode image: {e}") from e
    turns = [_ORIENT.get(h.getexif().get(_EXIF_ORIENTATION, 1)) for h in headers]
    return [turn(x) if turn else x for x, turn in zip(decoded, turns, strict=True)]


def decode_tensors(datas: list[bytes], device: torch.device) -> list[torch.Tensor]:
    """uint8 (3, H, W) RGB of every image on `device`, in order: JPEGs through decode_jpeg in one batch, other
    formats through PIL (decode_image) and then moved. InvalidImage names the first bad image; every header is
    checked before any image is decoded."""
    from torchvision.transforms.functional import pil_to_tensor

    headers = [_open(data, i) for i, data in enumerate(datas)]
    jpegs = [i for i, h in enumerate(headers) if _device_decodable(h)]
    others = {i: pil_to_tensor(decode_image(data, i)).to(device)
              for i, data in enumerate(datas) if not _device_decodable(headers[i])}
    try:
        decoded = iter(_decode_checked([datas[i] for i in jpegs], [headers[i] for i in jpegs], device))
    except InvalidImage as e:
        raise InvalidImage(jpegs[e.index], e.reason) from e
    return [others[i] if i in others else next(decoded) for i in range(len(datas))]


def resize_batch(images: list[torch.Tensor], size: int | tuple[int, int], crop: int | None,
                 mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, 3, h, w) float32 model input of uint8 (3, H, W) images, on their device: resized (antialiased
    bilinear; `size` an int scales the short side to it, as the PIL pipeline's Resize), centre-cropped to
    crop x crop when given, and normalised. Images of one size are resized together, as one op."""
    from torchvision.transforms import functional as TF

    if not images:
        raise ValueError("resize_batch needs at least one image")
    out: list[torch.Tensor | None] = [None] * len(images)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(images):
        by_size.setdefault(tuple(x.shape), []).append(i)
    target = [size] if isinstance(size, int) else list(size)
    for group in by_size.values():
        x = torch.stack([images[i] for i in group]).float()
        x = TF.resize(x, target, antialias=True)
        if crop is not None:
            x = TF.center_crop(x, [crop, crop])
        for i, one in zip(group, x, strict=True):
            out[i] = one
    batch = torch.stack(out)  # type: ignore[arg-type]
    device, dtype = batch.device, batch.dtype
    scale = torch.tensor(std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
    shift = torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
    return (batch - shift) / scale
