"""DataLoaders over a task's data set at one image size (a stage with another size builds new ones)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from fineserve_common.configs import FineTuneConfig

from ..distributed import per_rank_batch, rank, world_size
from .base_weights import LoadedBase
from .tasks import TaskData, task_for


def _common(cfg: FineTuneConfig, device: torch.device) -> dict[str, Any]:
    # No persistent workers: fresh workers each epoch are seeded from that epoch's generator, so a resumed job
    # replays the same augmentations.
    return {"num_workers": cfg.num_workers, "pin_memory": device.type == "cuda"}


def train_loader(cfg: FineTuneConfig, data: TaskData, base: LoadedBase, device: torch.device,
                 image_size: int) -> DataLoader:
    """Shuffled by its own generator (see reseed_for_epoch); full batches only, since the head's BatchNorm
    cannot train on one sample. Under data-parallel training each rank reads its own shard of a shuffle shared
    by all ranks, in batches of its share of the global batch_size."""
    dataset = task_for(cfg).dataset(data, data.train, image_size, base, cfg, True)
    generator = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch_size, len(data.train))
    if world_size() == 1:
        return DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, generator=generator,
                          **_common(cfg, device))
    sampler = DistributedSampler(dataset, shuffle=True, seed=cfg.seed, drop_last=True)
    return DataLoader(dataset, batch_size=per_rank_batch(batch), sampler=sampler, drop_last=True,
                      generator=generator, **_common(cfg, device))


def valid_loader(cfg: FineTuneConfig, data: TaskData, base: LoadedBase, device: torch.device,
                 image_size: int) -> DataLoader:
    """Under data-parallel training, every world_size-th item from the rank's own (metrics are summed over
    ranks, so no item is counted twice or padded in)."""
    dataset = task_for(cfg).dataset(data, data.valid, image_size, base, cfg, False)
    if world_size() > 1:
        dataset = Subset(dataset, range(rank(), len(data.valid), world_size()))
    return DataLoader(dataset, batch_size=per_rank_batch(cfg.batch_size), **_common(cfg, device))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's order and augmentations."""
    return (seed * 1_000_003 + epoch) % 2**63


def reseed_for_epoch(loader: DataLoader, seed: int, epoch: int) -> DataLoader:
    """Make the epoch's order (and worker seeds) a function of (seed, epoch) alone, so a job resumed at any
    epoch sees the batches an uninterrupted run would have."""
    loader.generator.manual_seed(epoch_seed(seed, epoch))
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    return loader
