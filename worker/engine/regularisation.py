"""Training losses and their regularisers: label smoothing and mixup, for single-label (softmax cross-entropy)
and multi-label (sigmoid binary cross-entropy per label) targets."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each image with another one of the batch: (lam*x + (1-lam)*x[perm], y[perm], lam), one
    lam ~ Beta(alpha, alpha) per batch. Draws from torch's global RNG, which the job seeds and checkpoints."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(x)).to(x.device, non_blocking=True)
    return torch.lerp(x[perm], x, lam), y[perm], lam


def target_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0,
                multi_label: bool = False) -> torch.Tensor:
    """Cross-entropy against class indices, or, multi-label, mean binary cross-entropy with logits against
    multi-hot targets (smoothed towards 1/2 the way cross-entropy smooths towards 1/C)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, y * (1 - label_smoothing) + label_smoothing / 2)
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


def training_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                  mixed: tuple[torch.Tensor, float] | None = None, multi_label: bool = False) -> torch.Tensor:
    """target_loss (smoothed if asked); with mixup, lam*loss(y) + (1-lam)*loss(y_b) for mixed = (y_b, lam)."""
    loss = target_loss(logits, y, label_smoothing, multi_label)
    if mixed is None:
        return loss
    y_b, lam = mixed
    return lam * loss + (1 - lam) * target_loss(logits, y_b, label_smoothing, multi_label)
