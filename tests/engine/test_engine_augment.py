"""Batch augmentation (worker/engine/vision/augment.py): each transform does what it says, image and mask move
together, and the training data path applies it as a function of (seed, epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from worker.engine import FineTuneConfig
from worker.engine.train_loop import ignore_event
from worker.engine.vision.augment import augment, lighting
from worker.engine.vision.family import VisionJob

from .synthetic_images import TINY, write_class

OFF = FineTuneConfig(flip=False, min_scale=1.0, p_affine=0.0, p_lighting=0.0)


def _blocks(n: int, size: int = 64, block: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose red channel spells their mask (class c -> red c/3) in blocks of random classes."""
    g = torch.Generator().manual_seed(1)
    cells = torch.randint(0, 4, (n, size // block, size // block), generator=g)
    mask = cells.repeat_interleave(block, 1).repeat_interleave(block, 2)
    x = torch.rand(n, 3, size, size, generator=g)
    x[:, 0] = mask / 3
    return x, mask


def test_a_mask_stays_aligned_with_its_image_under_rotate_zoom_and_warp() -> None:
    x, mask = _blocks(8)
    aug = FineTuneConfig(flip=True, min_scale=1.0, max_rotate=30.0, max_zoom=1.3, max_warp=0.3, p_affine=1.0,
                         p_lighting=0.0)
    out, out_mask = augment(x, aug, torch.Generator().manual_seed(0), mask=mask)
    assert out.shape == x.shape and out_mask is not None and out_mask.dtype == mask.dtype
    assert (out_mask != mask).float().mean() > 0.2  # the geometry did change
    red = out[:, 0] * 3
    m = out_mask[:, None].float()
    # away from block edges (where bilinear sampling blends classes): the mask is one class all around
    interior = (F.max_pool2d(m, 3, 1, 1) == -F.max_pool2d(-m, 3, 1, 1))[:, 0]
    interior[:, [0, -1]], interior[:, :, [0, -1]] = False, False  # and off the border, where reflection joins
    assert interior.float().mean() > 0.6
    assert ((red - out_mask)[interior].abs() < 0.01).all()


def test_lighting_keeps_each_images_pixel_order() -> None:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    y = lighting(x, FineTuneConfig(max_lighting=0.5, p_lighting=1.0), torch.Generator().manual_seed(0))
    assert (y - x).abs().amax(dim=(1, 2, 3)).min() > 0.01  # every image changed
    for before, after in zip(x.flatten(1), y.flatten(1), strict=True):
        order = before.argsort()
        assert (after[order].diff() >= 0).all()


def test_flip_mirrors_some_images_and_leaves_the_others() -> None:
    x = torch.rand(32, 3, 8, 12, generator=torch.Generator().manual_seed(3))
    out, _ = augment(x, FineTuneConfig(flip=True, min_scale=1.0, p_affine=0.0, p_lighting=0.0),
                     torch.Generator().manual_seed(0))
    same = [torch.allclose(o, i, atol=2e-4) for o, i in zip(out, x, strict=True)]
    mirrored = [torch.allclose(o, i.flip(-1), atol=2e-4) for o, i in zip(out, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 4 < sum(mirrored) < 28


def test_nothing_happens_when_every_chance_is_zero() -> None:
    x, mask = _blocks(4)
    out, out_mask = augment(x, OFF, torch.Generator().manual_seed(0), mask=mask)
    assert torch.allclose(out, x, atol=2e-4) and torch.equal(out_mask, mask)


def test_random_resized_crop_samples_the_stage_size_from_a_part_of_the_image() -> None:
    ramp = torch.linspace(0, 1, 40)
    x = torch.stack([ramp.expand(40, 40), ramp[:, None].expand(40, 40), torch.zeros(40, 40)]).expand(16, 3, 40, 40)

    def areas(aug: FineTuneConfig) -> torch.Tensor:
        out, _ = augment(x, aug, torch.Generator().manual_seed(0), hw=(20, 20))
        assert out.shape == (16, 3, 20, 20)
        width = out[:, 0].amax(dim=(1, 2)) - out[:, 0].amin(dim=(1, 2))  # red = column, green = row
        return width * (out[:, 1].amax(dim=(1, 2)) - out[:, 1].amin(dim=(1, 2)))

    whole = areas(OFF)
    share = areas(FineTuneConfig(flip=False, min_scale=0.3, p_affine=0.0, p_lighting=0.0)) / whole
    assert (share > 0.25).all() and (share < 0.99).all() and share.std() > 0.05


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("augment")
    write_class(root / "vertical", True, 10, 0)
    write_class(root / "horizontal", False, 10, 100)
    return root


def _epoch_batches(root: Path, epoch: int, **overrides: object) -> list[torch.Tensor]:
    job = VisionJob(FineTuneConfig(**{**TINY, "device": "cpu", "valid_pct": 0.2, **overrides}), root, ignore_event)
    job.build(ignore_event)
    train, _ = job.loaders(job.stages()[0])
    return [x for x, _ in job.epoch_batches(train, epoch, None)]  # type: ignore[arg-type]


def test_the_training_data_path_augments_each_epoch_as_its_seed_says(folders: Path) -> None:
    first = _epoch_batches(folders, 1)
    assert first[0].shape == (8, 3, 32, 32) and first[0].dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(first, _epoch_batches(folders, 1), strict=True))
    second = _epoch_batches(folders, 2)
    assert not torch.equal(first[0], second[0])
    plain = _epoch_batches(folders, 1, flip=False, min_scale=1.0, p_affine=0.0, p_lighting=0.0)
    assert not any(torch.allclose(a, b, atol=1e-3) for a, b in zip(first, plain, strict=True))


@pytest.mark.parametrize(("name", "value"), [("min_scale", 0.0), ("max_rotate", float("nan")), ("max_zoom", 0.9),
                                             ("max_warp", 0.5), ("max_lighting", 1.0), ("p_affine", 1.5),
                                             ("p_lighting", -0.1)])
def test_each_augmentation_hyperparameter_is_bounded(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        FineTuneConfig(**{name: value})
