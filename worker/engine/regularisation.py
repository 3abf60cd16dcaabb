"""Training-loss regularisers: label smoothing (inside torch's cross-entropy) and mixup."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each image with another one of the batch: (lam*x + (1-lam)*x[perm], y[perm], lam), one
    lam ~ Beta(alpha, alpha) per batch. Draws from torch's global RNG, which the job seeds and checkpoints."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(x)).to(x.device, non_blocking=True)
    return torch.lerp(x[perm], x, lam), y[perm], lam


def training_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                  mixed: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
    """Cross-entropy (smoothed if asked); with mixup, lam*CE(y) + (1-lam)*CE(y_b) for mixed = (y_b, lam)."""
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    if mixed is None:
        return loss
    y_b, lam = mixed
    return lam * loss + (1 - lam) * F.cross_entropy(logits, y_b, label_smoothing=label_smoothing)
