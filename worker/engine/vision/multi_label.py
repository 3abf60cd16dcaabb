"""Multi-label metrics: accuracy at a threshold, sample-averaged F-beta, and per-label thresholds tuned on the
validation set to maximise F-beta (what fast.ai did for the Planet competition)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.nn import functional as F

from ..train_loop import Batch, LoopSettings, never_stop, valid_logits

THRESHOLD_GRID = torch.linspace(0.01, 0.99, 99)
"""Candidate thresholds of the tuning; every label's threshold is one of them."""
TUNING_PASSES = 3
"""Coordinate-ascent sweeps over the labels (a threshold's best value depends on the others' through F-beta)."""
EPS = 1e-9


def fbeta(probs: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor | float, beta: float) -> float:
    """F-beta per image (precision and recall of its predicted labels), averaged over images; an image with
    neither a true nor a predicted label scores 0, as in fast.ai's fbeta."""
    return float(_fbeta_per_image((probs > thresholds).float(), targets, beta).mean())


def _fbeta_per_image(predicted: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    tp = (predicted * targets).sum(-1)
    precision = tp / (predicted.sum(-1) + EPS)
    recall = tp / (targets.sum(-1) + EPS)
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall + EPS)


def accuracy_at(probs: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor | float) -> float:
    """Share of (image, label) decisions that are right: fast.ai's accuracy_thresh."""
    return float(((probs > thresholds).float() == targets).float().mean())


def tune_thresholds(probs: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-label thresholds maximising sample-averaged F-beta: start from the best single threshold, then
    sweep the labels, each time setting one label's threshold to its best grid value given the others.

    Sample-averaged F-beta couples the labels of an image, so no label's threshold can be tuned alone; the
    sweeps only ever raise the score. Ties go to the lowest threshold (F-beta with beta > 1 favours recall).
    """
    n_labels = probs.shape[1]
    scores = [fbeta(probs, targets, float(t), beta) for t in THRESHOLD_GRID]
    thresholds = torch.full((n_labels,), float(THRESHOLD_GRID[max(range(len(scores)), key=scores.__getitem__)]))
    # Every candidate of one label at once: (grid, images, labels) decisions, one label's column varying.
    for _ in range(TUNING_PASSES):
        changed = False
        for label in range(n_labels):
            predicted = (probs > thresholds).float().expand(len(THRESHOLD_GRID), -1, -1).clone()
            predicted[:, :, label] = (probs[None, :, label] > THRESHOLD_GRID[:, None]).float()
            per_grid = _fbeta_per_image(predicted, targets, beta).mean(-1)
            best = int(torch.argmax(per_grid))  # first maximum: the lowest threshold
            if per_grid[best] > _fbeta_per_image((probs > thresholds).float(), targets, beta).mean() + 1e-12:
                thresholds[label] = THRESHOLD_GRID[best]
                changed = True
        if not changed:
            break
    return thresholds


def predict_valid(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    settings: LoopSettings,
    should_stop: Callable[[], bool] = never_stop,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(mean binary cross-entropy, sigmoid scores (N, L), targets (N, L)) over all batches, on CPU."""
    total = torch.zeros((), dtype=torch.float64, device=settings.device)
    probs, targets = [], []
    for logits, y in valid_logits(model, batches, settings, should_stop):
        total += F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        probs.append(logits.sigmoid().cpu())
        targets.append(y.cpu())
    p, t = torch.cat(probs), torch.cat(targets)
    return total.item() / t.numel(), p, t


def multi_label_metrics(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    settings: LoopSettings,
    threshold: float,
    beta: float,
    should_stop: Callable[[], bool] = never_stop,
) -> dict[str, float]:
    """Epoch metrics: valid_loss, accuracy and fbeta at one threshold for every label."""
    loss, probs, targets = predict_valid(model, batches, settings, should_stop)
    return {
        "valid_loss": loss,
        "accuracy": accuracy_at(probs, targets, threshold),
        "fbeta": fbeta(probs, targets, threshold, beta),
    }
