"""fast.ai's ClassificationInterpretation, made by the engine when an image job ends from the one served pass
(served_metrics.py: the stored model, loaded as a replica loads it, run once over the validation set; the
recorded metrics come from the same outputs). Classification gets the confusion matrix, per-class precision /
recall / F1, the most confused pairs and the top losses; multi-label per-label precision / recall / F-beta;
segmentation per-class IoU."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from fineserve_common.events import ClassMetrics, Interpretation, TopLoss

MAX_CONFUSION_CLASSES = 256
"""Above this many classes the matrix (classes^2 counts, stored with the job) is left out; per-class numbers stay."""
MOST_CONFUSED = 16
TOP_LOSSES = 16


def confusion_counts(actual: torch.Tensor, predicted: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n) int64 counts of (actual, predicted) over paired 1-d class indices."""
    return torch.bincount(actual.long() * n + predicted.long(), minlength=n * n).view(n, n).cpu()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def _f_score(precision: torch.Tensor, recall: torch.Tensor, beta: float) -> torch.Tensor:
    b2 = beta * beta
    return _ratio((1 + b2) * precision * recall, b2 * precision + recall)


def class_metrics(counts: torch.Tensor, classes: list[str], with_iou: bool = False) -> list[ClassMetrics]:
    """Per class of a confusion matrix: precision (of its column), recall (of its row), F1, support (row sum)
    and, for segmentation, IoU."""
    counts = counts.double()
    tp = counts.diag()
    predicted, actual = counts.sum(0), counts.sum(1)
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    iou = _ratio(tp, predicted + actual - tp) if with_iou else torch.zeros_like(tp)
    f1 = _f_score(precision, recall, 1.0)
    return [ClassMetrics(name, float(precision[i]), float(recall[i]), float(f1[i]), int(actual[i]), float(iou[i]))
            for i, name in enumerate(classes)]


def most_confused(counts: torch.Tensor, classes: list[str], k: int = MOST_CONFUSED) -> list[tuple[str, str, int]]:
    """The k largest off-diagonal cells with a count of at least 1, as (actual, predicted, count), largest first
    (ties in class order)."""
    off = counts.clone()
    off.fill_diagonal_(0)
    values, flat = off.flatten().sort(descending=True, stable=True)
    n = len(classes)
    return [(classes[i // n], classes[i % n], int(v)) for v, i in zip(values[:k].tolist(), flat[:k].tolist(),
                                                                       strict=True) if v > 0]


def top_losses(losses: torch.Tensor, actual: torch.Tensor, predicted: torch.Tensor, probability: torch.Tensor,
               items: list[str], classes: list[str], k: int = TOP_LOSSES) -> list[TopLoss]:
    """The k items with the highest loss, highest first."""
    order = losses.sort(descending=True, stable=True).indices[:k].tolist()
    return [TopLoss(items[i], classes[int(actual[i])], classes[int(predicted[i])], float(losses[i]),
                    float(probability[i])) for i in order]


def label_metrics(probs: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor, labels: list[str],
                  beta: float) -> list[ClassMetrics]:
    """Per label of (N, L) scores and multi-hot targets: precision / recall / F-beta of the decisions score >
    threshold (what ScoreLabels serves)."""
    decided, truth = (probs > thresholds).double(), targets.double()
    tp = (decided * truth).sum(0)
    precision, recall = _ratio(tp, decided.sum(0)), _ratio(tp, truth.sum(0))
    f = _f_score(precision, recall, beta)
    return [ClassMetrics(name, float(precision[i]), float(recall[i]), float(f[i]), int(truth[:, i].sum()),
                         threshold=float(thresholds[i])) for i, name in enumerate(labels)]


def classification_interpretation(served: Any, logits: torch.Tensor, actual: torch.Tensor,
                                  items: list[str]) -> Interpretation:
    """From the served model's (N, C) logits on the validation items (named by items) and their classes."""
    classes, actual = served.classes, actual.long()
    predicted = logits.argmax(dim=1)
    counts = confusion_counts(actual, predicted, len(classes))
    probability = served.activate(logits).gather(1, actual[:, None]).squeeze(1)
    losses = F.cross_entropy(logits, actual, reduction="none")
    return _with_matrix(_common(served, len(items)), counts, class_metrics(counts, classes),
                        top_losses(losses, actual, predicted, probability, items, classes))


def multi_label_interpretation(served: Any, probs: torch.Tensor, targets: torch.Tensor) -> Interpretation:
    """From the served model's (N, L) scores and the multi-hot targets, each label at its served threshold."""
    beta = float(served.card["fbeta_beta"])
    per_label = label_metrics(probs, targets, served.thresholds, served.classes, beta)
    return Interpretation(**_common(served, len(targets)), per_class=per_label, beta=beta)


def segmentation_interpretation(served: Any, counts: torch.Tensor, items: int) -> Interpretation:
    """From the (classes, classes) pixel counts of the served model on the validation images (void left out)."""
    return _with_matrix(_common(served, items), counts, class_metrics(counts, served.classes, with_iou=True))


def _common(served: Any, items: int) -> dict[str, Any]:
    return {"task": served.card["task"], "classes": served.classes, "items": items, "precision": served.precision}


def _with_matrix(common: dict[str, Any], counts: torch.Tensor, per_class: list[ClassMetrics],
                 losses: list[TopLoss] | None = None) -> Interpretation:
    classes = common["classes"]
    matrix = counts.tolist() if len(classes) <= MAX_CONFUSION_CLASSES else []
    return Interpretation(**common, confusion=matrix, per_class=per_class,
                          most_confused=most_confused(counts, classes), top_losses=losses or [])
