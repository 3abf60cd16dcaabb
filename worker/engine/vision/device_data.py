"""A data set decoded once onto the training device and kept there as uint8 for every epoch: a CUDA job's JPEGs
go through the GPU decoder in batches (images.decode_tensors, after the header checks) and are resized there,
so no epoch decodes on the CPU. Used when the data set fits in a share of the device's free memory; the same
code runs on the CPU (tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torchvision.transforms import functional as TF

from ..distributed import per_rank_batch, rank, world_size
from ..errors import DatasetError, InvalidImage
from ..images import decode_tensors
from ..train_loop import Batch
from .augment import Normalize, to_unit
from .loaders import epoch_seed

DECODE_CHUNK = 256
"""Files read and decoded per call: bounds the compressed and full-size decoded bytes held at once."""
MEMORY_SHARE = 0.25
"""The share of the device's free memory a cached data set may take; the rest is for training."""


def square(image: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (3, side, side): the short side scaled to side (antialiased), then the centre crop."""
    resized = TF.resize(image.float(), [side], antialias=True)
    return TF.center_crop(resized, [side, side]).round_().clamp_(0, 255).to(torch.uint8)


def decode_squares(paths: Sequence[Path], side: int, device: torch.device) -> torch.Tensor:
    """(N, 3, side, side) uint8 on device of every file, decoded DECODE_CHUNK at a time; DatasetError names a
    file that cannot be decoded or breaks the image limits."""
    out = torch.empty((len(paths), 3, side, side), dtype=torch.uint8, device=device)
    for start in range(0, len(paths), DECODE_CHUNK):
        chunk = paths[start:start + DECODE_CHUNK]
        try:
            images = decode_tensors([path.read_bytes() for path in chunk], device)
        except InvalidImage as e:
            raise DatasetError(f"cannot read training image {chunk[e.index]}: {e.reason}") from e
        for i, image in enumerate(images):
            out[start + i] = square(image, side)
    return out


def fits(n_images: int, side: int, device: torch.device) -> bool:
    """Whether n_images uint8 squares of side fit in MEMORY_SHARE of the device's free memory (CUDA only: a CPU
    job keeps its DataLoader, whose workers decode in parallel)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return n_images * 3 * side * side < MEMORY_SHARE * free


def _targets(items: Sequence[tuple[Path, int | torch.Tensor]], device: torch.device) -> torch.Tensor:
    labels = [label for _, label in items]
    if isinstance(labels[0], torch.Tensor):
        return torch.stack(labels).to(device)  # type: ignore[arg-type]
    return torch.tensor(labels, dtype=torch.int64, device=device)


class DeviceImages:
    """A split's images as uint8 squares on the device with their targets; batches are drawn from them in an
    order that depends on (seed, epoch) alone (shuffled, full batches: training) or in order (validation,
    normalised). Under data-parallel training each rank takes its share of one shuffle shared by all ranks, as
    DistributedSampler does."""

    def __init__(self, items: Sequence[tuple[Path, int | torch.Tensor]], side: int, batch_size: int,
                 device: torch.device, *, train: bool, seed: int = 0,
                 mean: Sequence[float] = (), std: Sequence[float] = ()) -> None:
        self.pixels = decode_squares([path for path, _ in items], side, device)
        self.targets = _targets(items, device)
        self.train, self.seed = train, seed
        self.normalize = None if train else Normalize(mean, std, device)
        self.batch = per_rank_batch(min(batch_size, len(items)) if train else batch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        n, world = len(self.targets), world_size()
        if not self.train:
            return list(range(rank(), n, world))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        return order[: n - n % world][rank()::world].tolist()

    def __len__(self) -> int:
        n = len(self._indices())
        return n // self.batch if self.train else -(-n // self.batch)

    def __iter__(self) -> Iterator[Batch]:
        indices = torch.tensor(self._indices(), dtype=torch.int64).to(self.pixels.device, non_blocking=True)
        for b in range(len(self)):
            pick = indices[b * self.batch:(b + 1) * self.batch]
            x, y = self.pixels[pick], self.targets[pick]
            yield (x, y) if self.normalize is None else (self.normalize(to_unit(x)), y)
