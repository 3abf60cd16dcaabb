"""An image job's one pass of its served model over the validation set (served_eval.py): the validation images as
training validated them (the last stage's size, the base's normalisation), forward passes at the served precision
and layout. The recorded metrics (the epoch metrics' names; a multi-label model's at its tuned thresholds, as
ScoreLabels decides) and the interpretation (interpretation.py) both come from its outputs. Under data-parallel
training each rank passes its shard of the validation set; the outputs are shared, so every rank records the same
metrics, and the main rank alone builds the interpretation."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn import functional as F

from fineserve_common.events import Interpretation
from fineserve_common.tasks import MULTI_LABEL, SEGMENTATION

from ..distributed import is_main, sum_across, world_size
from ..train_loop import LoopSettings, valid_logits, validate
from .interpretation import classification_interpretation, multi_label_interpretation, segmentation_interpretation
from .loaders import valid_loader
from .multi_label import accuracy_at, fbeta
from .segmentation_metrics import ConfusionMatrix
from .tasks import TaskData

Pass = tuple[dict[str, float], Interpretation | None]


def served_pass(cfg: Any, data: TaskData, base: Any, image_size: int, settings: LoopSettings, served: Any,
                dataset_dir: Path) -> Pass:
    """(metrics, interpretation) of served on data's validation images, from one pass; the interpretation is
    None except on the main rank. Multi-label metrics are at the served thresholds, not at cfg.threshold."""
    settings = replace(settings, device=served.device, precision=served.precision,
                       channels_last=served.channels_last)
    batches = valid_loader(cfg, data, base, served.device, image_size)
    if cfg.task == SEGMENTATION:  # pixel counts, summed batch by batch: a set's logits need not fit in memory
        matrix = ConfusionMatrix(data.classes, data.void_index, served.device)  # type: ignore[attr-defined]
        valid_loss, accuracy = validate(served.model, batches, settings, observe=matrix.update)
        metrics = {"accuracy": accuracy, "valid_loss": valid_loss, **matrix.metrics()}
        counts = sum_across(matrix.counts.clone()).cpu()
        return metrics, segmentation_interpretation(served, counts, len(data.valid)) if is_main() else None
    outputs = [(logits, y) for logits, y in valid_logits(served.model, batches, settings)]
    logits = gather_shards(torch.cat([logits for logits, _ in outputs]), len(data.valid)).cpu()
    targets = gather_shards(torch.cat([y for _, y in outputs]), len(data.valid)).cpu()
    if cfg.task == MULTI_LABEL:
        return _multi_label(served, logits, targets)
    metrics = {"accuracy": float((logits.argmax(dim=1) == targets).double().mean()),
               "valid_loss": float(F.cross_entropy(logits.double(), targets))}
    if not is_main():
        return metrics, None
    items = [Path(os.path.relpath(item[0], dataset_dir)).as_posix() for item in data.valid]
    return metrics, classification_interpretation(served, logits, targets, items)


def _multi_label(served: Any, logits: torch.Tensor, targets: torch.Tensor) -> Pass:
    probs, thresholds = served.activate(logits), served.thresholds
    beta = float(served.card["fbeta_beta"])
    metrics = {"valid_loss": float(F.binary_cross_entropy_with_logits(logits.double(), targets.double())),
               "accuracy": accuracy_at(probs, targets, thresholds), "fbeta": fbeta(probs, targets, thresholds, beta)}
    return metrics, multi_label_interpretation(served, probs, targets) if is_main() else None


def gather_shards(rows: torch.Tensor, total: int) -> torch.Tensor:
    """Every rank's rows back in item order, on every rank: under data parallelism rank r holds items r, r + W,
    r + 2W, ... of `total` (loaders.valid_loader's shards); one process holds them all already."""
    world = world_size()
    if world == 1:
        return rows
    per_rank = -(-total // world)
    padded = rows.new_zeros((per_rank, *rows.shape[1:]))
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = rows.new_empty((total, *rows.shape[1:]))
    for r, part in enumerate(parts):
        out[r::world] = part[:len(range(r, total, world))]
    return out
