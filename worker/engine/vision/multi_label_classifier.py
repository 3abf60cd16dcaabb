"""Serving a multi-label model: every label's sigmoid score, and the labels over their threshold (the ones
tuned on the validation set at training time, or one threshold for every label)."""

from __future__ import annotations

from typing import Any

import torch

from fineserve_common.answers import LabelScores
from fineserve_common.tasks import MULTI_LABEL

from .classifier import ImageClassifier
from .resnet import ResNetClassifier


class MultiLabelClassifier(ImageClassifier):
    TASK = MULTI_LABEL

    def __init__(self, model: ResNetClassifier, card: dict[str, Any], device: torch.device) -> None:
        super().__init__(model, card, device)
        self.thresholds = torch.tensor(card["thresholds"], dtype=torch.float32)
        """Per-label thresholds tuned for F-beta on the validation set, in label order."""

    @staticmethod
    def activate(logits: torch.Tensor) -> torch.Tensor:
        """Independent sigmoids: each label is its own yes/no question."""
        return logits.sigmoid()

    def label_scores(self, scores: torch.Tensor, threshold: float | None = None) -> list[LabelScores]:
        """Per row of predict_tensor's scores: all labels' scores and those over threshold (None = the stored
        per-label thresholds)."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1] (got {threshold})")
        cut = self.thresholds if threshold is None else torch.full_like(self.thresholds, threshold)
        results = []
        for row in scores:
            over = sorted((i for i in range(len(self.classes)) if row[i] > cut[i]), key=lambda i: -row[i])
            results.append(
                LabelScores(
                    [(name, float(s)) for name, s in zip(self.classes, row.tolist(), strict=True)],
                    [self.classes[i] for i in over],
                )
            )
        return results

    def score_labels(self, images: list[bytes], threshold: float | None = None) -> list[LabelScores]:
        return self.label_scores(self.predict_proba(images), threshold)
