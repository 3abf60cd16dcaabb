"""Which class serves a model directory: the card's task picks it, so one replica serves every task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import EngineError
from .inference import ImageClassifier
from .model_card import read_card
from .segmentation_inference import ImageSegmenter

LOADERS = {"image_classification": ImageClassifier.load, "segmentation": ImageSegmenter.load}


def load_served_model(model_dir: str | Path, device: str = "auto") -> Any:
    task = read_card(model_dir).get("task")
    if task not in LOADERS:
        raise EngineError(f"{model_dir} holds a {task!r} model, which no fineserve engine serves")
    return LOADERS[task](model_dir, device)
