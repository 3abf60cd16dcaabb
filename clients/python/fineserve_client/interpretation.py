"""Results of ScoreLabels and Explain as plain Python values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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

    def save_overlay(self, path: str | os.PathLike[str]) -> Path:
        """Write the overlay PNG to path (parent folders must exist); returns the path."""
        out = Path(path)
        out.write_bytes(self.overlay_png)
        return out


def overlay_path(image_path: str | os.PathLike[str]) -> Path:
    """Where the CLI (and ``explain(..., save_overlays=True)``) writes an input's overlay: next to it,
    ``photo.jpg`` -> ``photo.gradcam.png``."""
    path = Path(image_path)
    return path.with_name(path.stem + OVERLAY_SUFFIX)
