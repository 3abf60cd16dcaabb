"""Single-label image-folder data sets cut from camvid_tiny's street photos, for the transfer-learning test.

A patch is labelled with a mask class when that class covers at least DOMINANCE of its pixels. Photos are split
before cutting, so no test patch shares a photo with a training patch.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

PATCH = 16
STRIDE = 8
DOMINANCE = 0.8


def _patches(camvid: Path, photos: list[str], classes: tuple[str, ...]) -> dict[str, list[Image.Image]]:
    codes = (camvid / "codes.txt").read_text().split()
    wanted = {codes.index(name): name for name in classes}
    found: dict[str, list[Image.Image]] = defaultdict(list)
    for photo in photos:
        image = Image.open(camvid / "images" / photo).convert("RGB")
        mask = np.asarray(Image.open(camvid / "labels" / f"{Path(photo).stem}_P.png"))
        for y in range(0, mask.shape[0] - PATCH + 1, STRIDE):
            for x in range(0, mask.shape[1] - PATCH + 1, STRIDE):
                counts = np.bincount(mask[y:y + PATCH, x:x + PATCH].ravel(), minlength=len(codes))
                code = int(counts.argmax())
                if code in wanted and counts[code] >= DOMINANCE * PATCH * PATCH:
                    found[wanted[code]].append(image.crop((x, y, x + PATCH, y + PATCH)))
    return found


def _write(folder: Path, images: list[Image.Image], rng: random.Random, limit: int) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(rng.sample(images, min(limit, len(images)))):
        image.save(folder / f"{i:04d}.png")


def write_transfer_datasets(camvid: Path, out: Path, pretrain_classes: tuple[str, ...],
                            target_classes: tuple[str, ...], *, test_photos: int, pretrain_per_class: int,
                            shots: int, test_per_class: int, sample_seed: int = 0) -> tuple[Path, Path]:
    """Write out/pretrain/<class> (pretrain classes, training photos) and out/target/{train,valid}/<class>
    (target classes: `shots` patches per class from the training photos, up to `test_per_class` from the
    held-out photos). The photo split is fixed; sample_seed draws the patches."""
    photos = sorted(p.name for p in (camvid / "images").iterdir())
    random.Random(0).shuffle(photos)
    held_out, training = photos[:test_photos], photos[test_photos:]
    for name, images in _patches(camvid, training, pretrain_classes).items():
        _write(out / "pretrain" / name, images, random.Random(sample_seed), pretrain_per_class)
    train, test = _patches(camvid, training, target_classes), _patches(camvid, held_out, target_classes)
    rng = random.Random(sample_seed)  # the target sets do not depend on how many pretraining patches were drawn
    for name in target_classes:
        if len(train[name]) < shots or not test[name]:
            raise ValueError(f"camvid_tiny has too few {name} patches: {len(train[name])} for training, "
                             f"{len(test[name])} for testing")
        _write(out / "target" / "train" / name, train[name], rng, shots)
        _write(out / "target" / "valid" / name, test[name], rng, test_per_class)
    return out / "pretrain", out / "target"
