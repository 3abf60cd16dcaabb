"""Segmentation results in the SDK: the mask as the server sent it, and files a person can look at.

The mask PNG needs nothing to save. The colour overlay blends the mask's palette over the input image, which
needs Pillow (`pip install 'fineserve-client[plot]'`); it is imported only when an overlay is asked for.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fineserve.v1 import inference_pb2

OVERLAY_ALPHA = 0.5


@dataclass(frozen=True)
class Segmentation:
    """One image's segmentation."""

    name: str
    """The input's name: the path as given, or ``bytes[i]`` for raw bytes."""
    width: int
    height: int
    mask_png: bytes
    """8-bit palette PNG at the input's size; pixel value = index into ``classes``."""
    classes: list[str]
    shares: dict[str, float]
    """Share of the image's pixels per class, in class order."""
    probabilities: dict[str, bytes] = field(default_factory=dict)
    """Per class, an 8-bit PNG of probability * 255 (only when asked for)."""
    model: str = ""
    """The model version that answered, as ``"name/version"``."""
    raw: Any = field(default=None, repr=False, compare=False)
    """The ``fineserve.v1.Segmentation`` message."""

    @classmethod
    def from_proto(cls, result: inference_pb2.Segmentation, classes: list[str], name: str, model: str) -> Segmentation:
        return cls(
            name=result.name or name,
            width=result.width,
            height=result.height,
            mask_png=result.mask_png,
            classes=classes,
            shares={s.label: s.share for s in result.shares},
            probabilities={p.label: p.png for p in result.probabilities},
            model=model,
            raw=result,
        )

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k classes covering most of the image, largest first."""
        return sorted(self.shares.items(), key=lambda item: -item[1])[:k]

    def save(self, out_dir: str | os.PathLike[str], image: bytes | None = None) -> dict[str, Path]:
        """Write ``<stem>.mask.png`` and, given the input image's bytes, ``<stem>.overlay.png`` (the mask's colours
        blended over the image; needs Pillow) into out_dir; returns the paths written by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(self.name).stem or "image"
        paths = {"mask": out / f"{stem}.mask.png"}
        paths["mask"].write_bytes(self.mask_png)
        if image is not None:
            paths["overlay"] = out / f"{stem}.overlay.png"
            paths["overlay"].write_bytes(overlay_png(image, self.mask_png))
        return paths


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("overlays need Pillow: pip install 'fineserve-client[plot]'") from e
    return Image


def overlay_png(image: bytes, mask_png: bytes, alpha: float = OVERLAY_ALPHA) -> bytes:
    """The mask's palette colours blended over the image (alpha = the mask's weight), as a PNG."""
    pil = _pil()
    mask = pil.open(io.BytesIO(mask_png)).convert("RGB")
    base = pil.open(io.BytesIO(image)).convert("RGB")
    if base.size != mask.size:
        raise ValueError(f"the image is {base.size[0]}x{base.size[1]} but the mask {mask.size[0]}x{mask.size[1]}")
    buf = io.BytesIO()
    pil.blend(base, mask, alpha).save(buf, format="PNG")
    return buf.getvalue()
