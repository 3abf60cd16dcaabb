"""Readying a loaded model for a serving replica (families.load_served_model loads it)."""

from __future__ import annotations

from typing import Any

import torch

from .precision import prefers_channels_last, resolve_precision
from .vision.classifier import ImageClassifier
from .vision.segmenter import ImageSegmenter


def prepare_for_serving(served: Any, precision: str = "fp32", max_batch: int = 1) -> Any:
    """Ready a loaded model for a serving replica: forward passes autocast to `precision` (as training's
    option; fp32 answers as the plain engine does), weights channels-last where the device convolves faster so,
    JPEGs decoded on a CUDA device (decode_jpeg: its CPU cores decode a tenth of what the GPU classifies), and
    warm-up passes (on CUDA at every batch size a pass of up to max_batch images runs at) so that callers'
    latency is the steady one from the first. Models without convolutions (text, embeddings, tables) are served
    as loaded."""
    if isinstance(served, ImageClassifier | ImageSegmenter):
        served.precision = resolve_precision(precision, served.device)
        if served.device.type == "cuda":
            served.decode_device = served.device
        if prefers_channels_last(served.device):
            served.model.to(memory_format=torch.channels_last)
            served.channels_last = True
        served.warm_up(max_batch)
    return served
