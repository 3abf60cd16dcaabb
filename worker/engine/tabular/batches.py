"""What the tabular family's jobs train and validate on: in-memory tensors in seeded batches, predictions in
chunks, and the one-CPU-thread rule of these small models."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]
EVAL_BATCH = 8192


class TensorBatches:
    """Mini-batches of in-memory tensors in a seeded order that changes every epoch (set_epoch). A last batch
    of one row is dropped: BatchNorm cannot train on it (the order changes, so no row is lost for good)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = 1

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size + (n % self.batch_size > 1)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


def predict(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Eval-mode outputs for all rows, in chunks, on the CPU."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(part.to(device)).float().cpu() for part in x.split(EVAL_BATCH)])


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """These models are small and take thousands of tiny steps: on CPU one intra-op thread beats several, whose
    synchronisation costs more than the work (MovieLens-100k's 5 epochs: ~12 s on one thread, minutes on two
    threads of a busy 2-core machine). Restores the caller's setting."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return math.sqrt(torch.mean((pred.double() - target.double()) ** 2).item())

