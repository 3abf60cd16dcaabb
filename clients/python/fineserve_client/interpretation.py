"""Results of ScoreLabels and Explain as plain Python values."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OVERLAY_SUFFIX = ".gradcam.png"


@dataclass(frozen=True)
class LabelScores:
    """A multi-label model's answer for one image."""

    name: str
    """The input's name: the path as given, or ``bytes[i]`` for raw bytes."""
    scores: dict[str, float] = field(default_factory=dict)
    """Every label's sigmoid score, in the model's label order."""
    predicted: list[str] = field(default_factory=list)
    """Labels over their threshold, highest score first."""
    model: str = ""
    """The model version that answered, as ``"name/version"``."""
    raw: Any = field(default=None, repr=False, compare=False)
    """The result message (``fineserve.v1.LabelScores``)."""


@dataclass(frozen=True)
class Heatmap:
    """A Grad-CAM heatmap of one image."""

    name: str
    """The input's name: the path as given, or ``bytes[i]`` for raw bytes."""
    target: str
    """The class or label explained."""
    grid: list[list[float]]
    """The map at the model's feature resolution, rows of floats in [0, 1]."""
    overlay_png: bytes
    """PNG of the map coloured over the input, at the input's size."""
    model: str = ""
    probability: float = 0.0
    """The target's served probability (segmentation: the share of pixels predicted as it)."""
    layer: str = ""
    """The ResNet stage the map was taken at: layer4, or an earlier one when the input is small."""
    warning: str = ""
    """Set when the map is too coarse to point at anything (under 4x4 cells even at layer2)."""

    def save_overlay(self, path: str | os.PathLike[str]) -> Path:
        """Write the overlay PNG to path (parent folders must exist); returns the path."""
        out = Path(path)
        out.write_bytes(self.overlay_png)
        return out


def overlay_path(image_path: str | os.PathLike[str], target: str = "") -> Path:
    """Where the CLI (and ``explain(..., save_overlays=True)``) writes an input's overlay: next to it, named by
    the target so that a second class's overlay does not overwrite the first's: ``photo.jpg`` explained for
    ``dog`` -> ``photo.dog.gradcam.png`` (characters a file name should not hold become ``_``)."""
    path = Path(image_path)
    tag = "." + re.sub(r"[^\w.-]", "_", target) if target else ""
    return path.with_name(path.stem + tag + OVERLAY_SUFFIX)
