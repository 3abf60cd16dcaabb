"""Which class serves a model directory: the card's task picks it, so one replica serves every task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import IMAGE_CLASSIFICATION, MULTI_LABEL, SEGMENTATION
from .embedding_tasks import LOADERS as EMBEDDING_LOADERS
from .errors import EngineError
from .inference import ImageClassifier
from .model_card import read_card
from .multi_label_inference import MultiLabelClassifier
from .segmentation_inference import ImageSegmenter
from .text_inference import TextClassifierModel

LOADERS = {IMAGE_CLASSIFICATION: ImageClassifier.load, MULTI_LABEL: MultiLabelClassifier.load,
           SEGMENTATION: ImageSegmenter.load, "text_classification": TextClassifierModel.load, **EMBEDDING_LOADERS}


def load_served_model(model_dir: str | Path, device: str = "auto") -> Any:
    task = read_card(model_dir).get("task")
    if task not in LOADERS:
        raise EngineError(f"{model_dir} holds a {task!r} model, which no fineserve engine serves")
    return LOADERS[task](model_dir, device)
