"""Loading a stored model for serving with the class its card's task calls for."""

from __future__ import annotations

from pathlib import Path

from .config import IMAGE_CLASSIFICATION, MULTI_LABEL
from .errors import EngineError
from .inference import ImageClassifier
from .model_card import read_card
from .multi_label_inference import MultiLabelClassifier

SERVED_MODELS: dict[str, type[ImageClassifier]] = {
    IMAGE_CLASSIFICATION: ImageClassifier,
    MULTI_LABEL: MultiLabelClassifier,
}


def load_model(model_dir: str | Path, device: str = "auto") -> ImageClassifier:
    task = read_card(model_dir).get("task")
    if task not in SERVED_MODELS:
        raise EngineError(f"{model_dir} holds a {task!r} model, which this server cannot serve")
    return SERVED_MODELS[task].load(model_dir, device)
