"""The headline metrics of a fine-tune, measured as the model will be served: after training, the stored model is
loaded as a replica loads it (families.load_served_model, then served_models.prepare_for_serving at the serving
precision) and its task's job runs one validation pass through it (TaskJob.served_pass): the serving
precision (a bf16-trained model is served in fp32), eval mode, and the served decisions (a multi-label model's
tuned thresholds). The recorded metrics and an image job's interpretation both come from that one pass. The
per-epoch metrics stay the training-time progress; the card keeps the kept epoch's as training_metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.distributed as dist

from fineserve_common.card import write_card
from fineserve_common.events import Interpretation

from .distributed import is_main, world_size
from .families import TASKS, load_served_model
from .job import TaskJob
from .served_models import prepare_for_serving

SERVING_PRECISION = "fp32"
"""The replicas' precision unless the operator sets another (service config `precision`, --serve-precision)."""


def load_as_served(model_dir: str | Path, device: str, precision: str = SERVING_PRECISION) -> Any:
    """The stored model as a serving replica holds it (eval mode, its forward passes at `precision`)."""
    return prepare_for_serving(load_served_model(model_dir, device), precision)


def served_card(job: TaskJob, model_dir: Path, card: dict[str, Any]) -> tuple[dict[str, Any], Interpretation | None]:
    """(card, interpretation) from one pass of the model in model_dir, loaded once as served
    (TaskJob.served_pass): card with its metrics replaced by those measured as served (the training-time ones
    move to training_metrics; train_loss, which only training measures, stays), rewritten atomically by the main
    rank, and the main rank's interpretation. Called on every rank of a data-parallel job: each passes its shard
    and the outputs are shared. A task nothing serves (a language model) keeps its training-time metrics."""
    if TASKS[job.task].served_by is None:
        return card, None
    if world_size() > 1:
        dist.barrier()  # the main rank has written the model every rank now loads
    served = load_as_served(model_dir, str(job.device))
    measured, interpretation = job.served_pass(served)
    trained = card["metrics"]
    metrics = {**measured, **({"train_loss": trained["train_loss"]} if "train_loss" in trained else {})}
    new = {**card, "metrics": metrics, "training_metrics": trained,
           "metrics_measured": {"as": "served", "precision": getattr(served, "precision", SERVING_PRECISION)}}
    if is_main():
        write_card(model_dir, new)
    return new, interpretation
