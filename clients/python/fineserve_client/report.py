"""A finished image job's interpretation (``GetJob``'s ``result.interpretation``) as typed values, and its plots.

The service measures the stored model on the job's validation set after training, as it serves it: the
confusion matrix, per-class precision / recall / F1, the most confused pairs and the top losses (image
classification), per-label precision / recall / F-beta at the served thresholds (multi-label), per-class IoU
(segmentation). The plots need matplotlib (``pip install 'fineserve-client[plot]'``), imported only when one is
drawn; ``plot_top_losses`` shows the images, which the service does not send: it reads them from a local copy of
the data set.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fineserve.v1 import training_pb2
from fineserve_common.events import ClassMetrics, TopLoss

from .plots import _pyplot

__all__ = ["ClassMetrics", "ConfusedPair", "Interpretation", "TopLoss", "interpretation_of",
           "plot_confusion_matrix", "plot_top_losses"]

ANNOTATE_UP_TO = 30
"""Classes up to which each cell of the plotted matrix carries its count."""


@dataclass(frozen=True)
class ConfusedPair:
    actual: str
    predicted: str
    count: int


@dataclass(frozen=True)
class Interpretation:
    task: str
    """"image_classification", "multi_label_classification" or "segmentation"."""
    classes: list[str]
    confusion: list[list[int]] = field(default_factory=list)
    """``confusion[actual][predicted]``: images, or non-void pixels; empty for multi-label or > 256 classes."""
    per_class: list[ClassMetrics] = field(default_factory=list)
    most_confused: list[ConfusedPair] = field(default_factory=list)
    top_losses: list[TopLoss] = field(default_factory=list)
    beta: float = 0.0
    items: int = 0
    """Validation images measured."""
    precision: str = ""

    @classmethod
    def from_proto(cls, m: training_pb2.Interpretation) -> Interpretation:
        n = len(m.classes)
        confusion = [list(m.confusion[i * n:(i + 1) * n]) for i in range(n)] if m.confusion else []
        return cls(
            m.task, list(m.classes), confusion,
            [ClassMetrics(c.name, c.precision, c.recall, c.f_score, c.support, c.iou, c.threshold)
             for c in m.per_class],
            [ConfusedPair(p.actual, p.predicted, p.count) for p in m.most_confused],
            [TopLoss(t.item, t.actual, t.predicted, t.loss, t.probability) for t in m.top_losses],
            m.beta, m.items, m.precision)


def interpretation_of(source: Any) -> Interpretation:
    """The interpretation of a job (the SDK's ``Job``, a ``training_pb2.Job`` or ``JobResult``) or of an
    ``Interpretation`` message; ValueError when the job has none (not finished, or not an image fine-tune)."""
    message = getattr(source, "raw", source)
    if isinstance(message, training_pb2.Job):
        message = message.result
    if isinstance(message, training_pb2.JobResult):
        if not message.HasField("interpretation"):
            raise ValueError("the job has no interpretation: only image fine-tunes that succeeded have one")
        message = message.interpretation
    if not isinstance(message, training_pb2.Interpretation):
        raise TypeError(f"expected a job or an interpretation, got {type(source).__name__}")
    return Interpretation.from_proto(message)


def plot_confusion_matrix(source: Any, path: str | os.PathLike[str], normalize: bool = False) -> None:
    """The confusion matrix (actual rows, predicted columns) as a PNG; ``normalize`` shows each row's shares."""
    found = interpretation_of(source)
    if not found.confusion:
        raise ValueError("no confusion matrix: multi-label jobs have none, and over 256 classes it is left out")
    plt = _pyplot()
    n = len(found.classes)
    values = [[c / max(sum(row), 1) for c in row] if normalize else row for row in found.confusion]
    side = min(max(4.5, 0.45 * n + 2.5), 24.0)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(n), found.classes, rotation=90 if n > 8 else 0)
    ax.set_yticks(range(n), found.classes)
    if n <= ANNOTATE_UP_TO:
        top = max(max(row) for row in values) or 1
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}" if normalize else f"{v}", ha="center", va="center",
                        color="white" if v > top / 2 else "black", fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    counted = ", pixel counts" if found.task == "segmentation" else ""
    ax.set_title(f"confusion matrix\n{found.items} validation images{counted}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_top_losses(source: Any, dataset_dir: str | os.PathLike[str], path: str | os.PathLike[str],
                    k: int = 9) -> None:
    """The k (at most 16, as the service keeps) validation images the model got most wrong, each titled
    ``predicted/actual`` and ``loss / probability of actual``, as a PNG. The service sends no images, so they are
    read from ``dataset_dir``: the local folder the data set was uploaded from (its layout, top folder as root)."""
    losses = interpretation_of(source).top_losses[:k]
    if not losses:
        raise ValueError("no top losses: only image classification jobs have them")
    root = Path(dataset_dir).resolve()
    files = []
    for top in losses:
        file = (root / top.item).resolve()
        if root not in file.parents or not file.is_file():
            raise FileNotFoundError(f"{top.item} is not a file in {root}: pass the folder the data set was "
                                    "uploaded from")
        files.append(file)
    plt = _pyplot()
    cols = math.ceil(math.sqrt(len(losses)))
    rows = math.ceil(len(losses) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, top, file in zip(list(axes.flat)[:len(losses)], losses, files, strict=True):
        image = plt.imread(file)
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(f"{top.predicted}/{top.actual}\n{top.loss:.2f} / {top.probability:.2g}", fontsize=10)
    fig.suptitle("prediction/actual, loss / probability of actual")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
