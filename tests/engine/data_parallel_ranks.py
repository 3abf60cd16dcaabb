"""One rank of a torch.distributed (gloo) process group running fine_tune, as a spawned process of the
data-parallel engine test: what Ray Train's TorchTrainer does for a job, without Ray."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

from fineserve_common.events import Event
from worker.engine import FineTuneConfig, fine_tune
from worker.engine.families import job_type


def weights_digest(model: nn.Module, buffers: bool = False) -> str:
    """sha256 of every parameter (or every buffer: BatchNorm's running statistics), by name: equal on two ranks
    only if they hold the same weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.named_buffers() if buffers else model.named_parameters()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train_rank(rank: int, world: int, init_method: str, cfg: dict[str, Any], dataset: str, out: str,
               report: str) -> None:
    """fine_tune on this rank; writes report/<rank>.json with its result's metrics, the events it saw (as JSON,
    "type" naming each one's class) and the digest of its final weights (every rank's, not only rank 0's file)."""
    torch.set_num_threads(1)
    config = FineTuneConfig.from_dict(cfg)
    digests: dict[str, str] = {}
    job = job_type(config)
    card_fields = job.card_fields

    def recording(self: Any, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        # Called once on every rank, with the trained model, after the last epoch.
        digests.update(parameters=weights_digest(model), buffers=weights_digest(model, buffers=True))
        return card_fields(self, model, metrics)

    job.card_fields = recording  # type: ignore[method-assign]  # this spawned process only
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        events: list[Event] = []
        result = fine_tune(config, dataset, out, events.append)
        seen = [{"type": type(e).__name__.lower(), **dataclasses.asdict(e)} for e in events]
        (Path(report) / f"{rank}.json").write_text(json.dumps(
            {"metrics": result.metrics, "events": seen, "weights": digests}))
    finally:
        dist.destroy_process_group()
