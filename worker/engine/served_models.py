"""Which class serves a model directory: the card's task picks it, so one replica serves every task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fineserve_common.configs.vision import IMAGE_CLASSIFICATION, MULTI_LABEL, SEGMENTATION

from .errors import EngineError
from .model_card import read_model_card
from .precision import prefers_channels_last, resolve_precision
from .tabular.predictor import TabularPredictor
from .tabular.recommender import Recommender
from .text.classifier import TextClassifierModel
from .vision.classifier import ImageClassifier
from .vision.multi_label_classifier import MultiLabelClassifier
from .vision.segmenter import ImageSegmenter

LOADERS = {IMAGE_CLASSIFICATION: ImageClassifier.load, MULTI_LABEL: MultiLabelClassifier.load,
           SEGMENTATION: ImageSegmenter.load, "text_classification": TextClassifierModel.load,
           "collaborative_filtering": Recommender.load, "tabular": TabularPredictor.load}


def load_served_model(model_dir: str | Path, device: str = "auto") -> Any:
    task = read_model_card(model_dir).get("task")
    if task not in LOADERS:
        raise EngineError(f"{model_dir} holds a {task!r} model, which no fineserve engine serves")
    return LOADERS[task](model_dir, device)


def prepare_for_serving(served: Any, precision: str = "fp32", max_batch: int = 1) -> Any:
    """Ready a loaded model for a serving replica: forward passes autocast to `precision` (as training's
    option; fp32 answers as the plain engine does), weights channels-last where the device convolves faster so,
    and warm-up passes (on CUDA at every batch size a pass of up to max_batch images runs at) so that callers'
    latency is the steady one from the first. Models without convolutions (text, embeddings, tables) are served
    as loaded."""
    if isinstance(served, ImageClassifier | ImageSegmenter):
        served.precision = resolve_precision(precision, served.device)
        if prefers_channels_last(served.device):
            served.model.to(memory_format=torch.channels_last)
            served.channels_last = True
        served.warm_up(max_batch)
    return served
