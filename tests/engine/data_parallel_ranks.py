"""One rank of a torch.distributed (gloo) process group running fine_tune, as a spawned process of the
data-parallel engine test: what Ray Train's TorchTrainer does for a job, without Ray."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist

from fineserve_common.events import Event
from worker.engine import FineTuneConfig, fine_tune


def train_rank(rank: int, world: int, init_method: str, cfg: dict[str, Any], dataset: str, out: str,
               report: str) -> None:
    """fine_tune on this rank; writes report/<rank>.json with its result's metrics and the events it saw (as
    JSON, "type" naming each one's class)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        events: list[Event] = []
        result = fine_tune(FineTuneConfig.from_dict(cfg), dataset, out, events.append)
        seen = [{"type": type(e).__name__.lower(), **dataclasses.asdict(e)} for e in events]
        (Path(report) / f"{rank}.json").write_text(json.dumps({"metrics": result.metrics, "events": seen}))
    finally:
        dist.destroy_process_group()
