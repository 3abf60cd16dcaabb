"""Segmentation metrics from one confusion matrix over every non-void validation pixel: per-class IoU and Dice,
and their means over the classes that occur (in the target or the prediction). Pixel accuracy without void is
validate()'s accuracy."""

from __future__ import annotations

import torch

from ..distributed import sum_across
from ..train_loop import IGNORE_INDEX


class ConfusionMatrix:
    """counts[t, p] = pixels of true class t predicted as p; void (IGNORE_INDEX) pixels are left out."""

    def __init__(self, classes: list[str], void_index: int | None, device: torch.device) -> None:
        self.classes = classes
        self.void_index = void_index
        n = len(classes)
        self.counts = torch.zeros(n, n, dtype=torch.int64, device=device)

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """logits (N, C, H, W), y (N, H, W)."""
        keep = y != IGNORE_INDEX
        n = len(self.classes)
        pairs = y[keep] * n + logits.argmax(dim=1)[keep]
        self.counts += torch.bincount(pairs, minlength=n * n).view(n, n)

    def metrics(self) -> dict[str, float]:
        """{"mean_iou", "dice", "iou:<class>"...} over every rank's pixels; the void class and classes absent from both
        target and prediction have no IoU and count in no mean."""
        counts = sum_across(self.counts.clone()).double().cpu()
        tp = counts.diag()
        fp, fn = counts.sum(0) - tp, counts.sum(1) - tp
        occurs = (tp + fp + fn) > 0
        if self.void_index is not None:
            occurs[self.void_index] = False
        iou = tp / (tp + fp + fn).clamp(min=1)
        dice = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
        out = {
            "mean_iou": iou[occurs].mean().item() if occurs.any() else 0.0,
            "dice": dice[occurs].mean().item() if occurs.any() else 0.0,
        }
        out |= {f"iou:{self.classes[i]}": iou[i].item() for i in occurs.nonzero().flatten().tolist()}
        return out
