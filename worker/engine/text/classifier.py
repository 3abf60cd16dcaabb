"""Serving a ULMFiT text classifier from its model directory (safetensors + card with the vocabulary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fineserve_common.tasks import TEXT_CLASSIFICATION

from ..model_card import load_model_dir
from ..vision.classifier import top_classes
from .awd_lstm import AWDLSTMSize, TextClassifier
from .data import pad_left
from .family import classifier_inputs
from .tokenizer import Vocab


class TextClassifierModel:
    """A loaded classifier in eval mode; each text is read on its own (no padding), so its probabilities do
    not depend on what it is batched with."""

    def __init__(self, model: TextClassifier, card: dict[str, Any], device: torch.device) -> None:
        self.model = model
        self.card = card
        self.classes: list[str] = list(card["classes"])
        self.vocab = Vocab.from_list(card["vocab"])
        self.device = device

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> TextClassifierModel:
        def build(card: dict[str, Any]) -> TextClassifier:
            return TextClassifier(AWDLSTMSize(**card["size"]), card["n_classes"], pad_id=1)

        return cls(*load_model_dir(model_dir, TEXT_CLASSIFICATION, build, device))

    def predict_proba(self, texts: list[str]) -> torch.Tensor:
        """(N, C) softmax probabilities; ValueError for an empty text."""
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {i} is empty")
        ids = classifier_inputs(texts, self.vocab, self.card["max_len"], self.card.get("text_window", "start"))
        with torch.inference_mode():
            logits = [self.model(pad_left([x], self.vocab.pad_id).to(self.device)) for x in ids]
        return torch.cat(logits).float().softmax(dim=1).cpu() if logits else torch.empty(0, len(self.classes))

    def predict(self, texts: list[str], top_k: int = 0) -> list[list[tuple[str, float]]]:
        """Per text, (label, probability) pairs, most probable first: top_k of them, or all for 0."""
        return top_classes(self.predict_proba(texts), self.classes, top_k or len(self.classes))
