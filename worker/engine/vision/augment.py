"""Batch augmentation on the batch's device (fast.ai's aug_transforms): random-resized crop, flip, rotation, zoom
and perspective warp composed into one homography per image and applied with one grid_sample, then lighting
(brightness and contrast in logit space). A segmentation mask goes through the same grid (nearest), so it stays
aligned with its image. Random draws come from a CPU generator, so a batch's transforms depend on the job's seed
and epoch alone, on any device, and a resumed job replays them. The settings are the job's own FineTuneConfig
fields (flip, min_scale, max_rotate, max_zoom, max_warp, max_lighting, p_affine, p_lighting)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.nn import functional as F

from fineserve_common.configs import FineTuneConfig

from ..train_loop import Batch, Batches


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def _chance(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) < p


def homographies(n: int, aspect: float, aug: FineTuneConfig, g: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) maps from an output pixel's normalised coordinates (x, y in [-1, 1]) to where it is sampled
    from in the input: crop . flip . rotate . zoom . warp. aspect = the output's width / height, so rotations are
    rigid in the output."""
    eye = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    crop = eye.clone()
    if aug.min_scale < 1:
        area = _uniform(n, aug.min_scale, 1.0, g)
        log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), g)
        w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
        h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
        crop[:, 0, 0], crop[:, 1, 1] = w, h
        crop[:, 0, 2], crop[:, 1, 2] = _uniform(n, -1, 1, g) * (1 - w), _uniform(n, -1, 1, g) * (1 - h)
    flip = eye.clone()
    if aug.flip:
        flip[:, 0, 0] = torch.where(_chance(n, 0.5, g), -1.0, 1.0)
    theta = torch.where(_chance(n, aug.p_affine, g), _uniform(n, -aug.max_rotate, aug.max_rotate, g), 0.0)
    theta = theta * math.pi / 180
    cos, sin = theta.cos(), theta.sin()
    rotate = eye.clone()  # a rotation in pixel-proportional coordinates, expressed in normalised ones
    rotate[:, 0, 0], rotate[:, 0, 1] = cos, -sin / aspect
    rotate[:, 1, 0], rotate[:, 1, 1] = sin * aspect, cos
    scale = 1 / torch.where(_chance(n, aug.p_affine, g), _uniform(n, 1.0, aug.max_zoom, g), 1.0)
    zoom = eye.clone()
    zoom[:, 0, 0], zoom[:, 1, 1] = scale, scale
    zoom[:, 0, 2], zoom[:, 1, 2] = _uniform(n, -1, 1, g) * (1 - scale), _uniform(n, -1, 1, g) * (1 - scale)
    warp = eye.clone()
    warped = _chance(n, aug.p_affine, g)
    warp[:, 2, 0] = torch.where(warped, _uniform(n, -aug.max_warp, aug.max_warp, g), 0.0)
    warp[:, 2, 1] = torch.where(warped, _uniform(n, -aug.max_warp, aug.max_warp, g), 0.0)
    return crop @ flip @ rotate @ zoom @ warp


def sampling_grid(matrices: torch.Tensor, hw: Sequence[int], device: torch.device) -> torch.Tensor:
    """grid_sample's (n, H, W, 2) grid for an output of size hw (pixel centres, align_corners=False)."""
    h, w = hw
    ys = (torch.arange(h, device=device, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=device, dtype=torch.float32) * 2 + 1) / w - 1
    points = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=device)], -1)
    mapped = points.reshape(1, h * w, 3) @ matrices.to(device, torch.float32, non_blocking=True).transpose(1, 2)
    return (mapped[..., :2] / mapped[..., 2:]).reshape(-1, h, w, 2)


def lighting(x: torch.Tensor, aug: FineTuneConfig, g: torch.Generator) -> torch.Tensor:
    """Brightness and contrast of [0, 1] images: sigmoid(logit(x) * contrast + logit(brightness)), which keeps
    every image's order of pixel values."""
    n = x.shape[0]
    m = aug.max_lighting
    brightness = torch.where(_chance(n, aug.p_lighting, g), _uniform(n, 0.5 * (1 - m), 0.5 * (1 + m), g), 0.5)
    log_c = torch.where(_chance(n, aug.p_lighting, g), _uniform(n, math.log(1 - m), -math.log(1 - m), g), 0.0)
    shift = torch.logit(brightness).to(x.device, x.dtype, non_blocking=True).view(n, 1, 1, 1)
    contrast = log_c.exp().to(x.device, x.dtype, non_blocking=True).view(n, 1, 1, 1)
    eps = 1e-4
    return torch.sigmoid(torch.logit(x.clamp(eps, 1 - eps)) * contrast + shift)


def augment(x: torch.Tensor, aug: FineTuneConfig, g: torch.Generator, hw: Sequence[int] | None = None,
            mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float [0, 1] images (n, C, H, W) (and their (n, H, W) masks) transformed at random to size hw (default:
    unchanged), on their device. Reflection fills what the transform brings in from outside the image, for the
    image and the mask alike."""
    n, _, height, width = x.shape
    out_hw = tuple(hw) if hw else (height, width)
    grid = sampling_grid(homographies(n, out_hw[1] / out_hw[0], aug, g), out_hw, x.device)
    x = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
    if mask is not None:
        mask = F.grid_sample(mask[:, None].float(), grid, mode="nearest", padding_mode="reflection",
                             align_corners=False)[:, 0].to(mask.dtype)
    return lighting(x, aug, g), mask


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as float [0, 1]; float images as they are."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class Normalize:
    """(x - mean) / std per channel, with mean and std put on the device once (a copy per batch would wait
    for the device)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1).to(device)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class AugmentedBatches:
    """A loader's batches moved to the training device, augmented there as one batch and normalised: the
    training data path of every image task. Masks (segmentation targets of shape (n, H, W)) follow their
    images; class targets pass through."""

    def __init__(self, batches: Batches, aug: FineTuneConfig, hw: Sequence[int], mean: Sequence[float],
                 std: Sequence[float], device: torch.device, seed: int) -> None:
        self.batches, self.aug, self.hw, self.device = batches, aug, tuple(hw), device
        self.normalize = Normalize(mean, std, device)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.batches:
            x = to_unit(x.to(self.device, non_blocking=True))
            y = y.to(self.device, non_blocking=True)
            masks = y.dim() == 3
            x, mask = augment(x, self.aug, self.generator, self.hw, y if masks else None)
            yield self.normalize(x), mask if mask is not None else y
