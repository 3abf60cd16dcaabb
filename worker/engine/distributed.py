"""What data-parallel training changes in the engine, as no-ops without a torch.distributed process group: each
rank trains on its shard of the training set and validates on its shard of the validation set, gradients are
averaged by DDP, metrics are summed over ranks, and only rank 0 writes files and reports events.

Batch-size and learning-rate semantics: cfg.batch_size is the global batch (each of N ranks takes
batch_size // N per step) and the learning rate is not scaled, so an N-worker job takes the same number of
optimizer steps on the same global batch size, with the same schedule, as a one-worker job.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def _group_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if _group_ready() else 1


def rank() -> int:
    return dist.get_rank() if _group_ready() else 0


def is_main() -> bool:
    """The rank that writes checkpoints and artifacts and reports events (the only rank without a group)."""
    return rank() == 0


def per_rank_batch(global_batch: int) -> int:
    """Each rank's share of the global batch; at least 2, since the head's BatchNorm cannot train on one sample."""
    share = global_batch // world_size()
    if share < 2:
        raise ValueError(f"batch_size {global_batch} gives each of {world_size()} workers fewer than 2 samples "
                         "per step; raise batch_size to at least 2 per worker")
    return share


def sum_across(t: torch.Tensor) -> torch.Tensor:
    """t summed over every rank (in place; t itself without a group)."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def mean_across(value: float, device: torch.device) -> float:
    """A per-rank float (a mean training loss) averaged over ranks."""
    if world_size() == 1:
        return value
    return sum_across(torch.tensor(value, dtype=torch.float64, device=device)).item() / world_size()


def share_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) copied to every rank. DDP averages gradients, so the
    parameters agree, but each rank's last training step updates its own statistics: without this the ranks
    validate different models, and only rank 0's is saved."""
    if world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def for_training(model: nn.Module, device: torch.device) -> nn.Module:
    """model wrapped in DDP when there is a process group (gradients averaged over ranks after backward), model
    otherwise. Wrap after freezing: DDP syncs exactly the parameters that require grad when it is built."""
    if world_size() == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index or 0] if device.type == "cuda" else None)
