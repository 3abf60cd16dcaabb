"""Single-label patch-classification data sets cut out of camvid_tiny's real street photos.

camvid_tiny has 100 photos (128x96) from 4 video sequences with per-pixel class masks. A square patch whose
mask is dominated by one class group becomes a labelled image of that group. Photos are split three ways
(never the same photo in two roles): A for pretraining on one group of classes, B for the few labelled
images of a disjoint group of classes, C for the held-out test images of that second group. The roles go by
contiguous runs of frames inside each sequence, so neighbouring frames (near-duplicates) mostly share a role.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Pretraining classes: the large surfaces of a street scene.
PRETRAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "building": ("Building",),
    "road": ("Road",),
    "sky": ("Sky",),
    "tree": ("Tree",),
}
# Fine-tuning classes: disjoint from the above.
FINETUNE_GROUPS: dict[str, tuple[str, ...]] = {
    "vehicle": ("Car", "SUVPickupTruck", "Truck_Bus"),
    "sidewalk": ("Sidewalk",),
    "wall_fence": ("Wall", "Fence"),
}


@dataclass(frozen=True)
class Patch:
    photo: str
    group: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class PatchSets:
    """Where the two data sets were written, and how many patches each split/class got (for reporting)."""

    pretrain_dir: Path
    finetune_dir: Path
    roles: dict[str, list[str]]
    counts: dict[str, dict[str, dict[str, int]]]


def sequence_and_frame(photo: str) -> tuple[str, str]:
    seq, _, frame = photo.partition("_")
    return seq, frame


def photo_roles(photos: Sequence[str], pattern: str) -> dict[str, str]:
    """Role per photo: within each sequence (frames in time order) repeat pattern, one letter per frame."""
    by_seq: dict[str, list[str]] = defaultdict(list)
    for photo in sorted(photos):
        by_seq[sequence_and_frame(photo)[0]].append(photo)
    return {photo: pattern[i % len(pattern)] for seq in by_seq.values() for i, photo in enumerate(seq)}


def cut_patches(camvid: Path, groups: Mapping[str, Sequence[str]], size: int, stride: int,
                purity: float) -> list[Patch]:
    """Every size x size window (step stride) where one group covers at least purity of the pixels."""
    codes = (camvid / "codes.txt").read_text().split()
    code_group = np.full(256, -1, dtype=np.int64)
    names = list(groups)
    for g, name in enumerate(names):
        for code in groups[name]:
            code_group[codes.index(code)] = g
    patches = []
    for mask_path in sorted((camvid / "labels").glob("*_P.png")):
        photo = mask_path.name.removesuffix("_P.png")
        mask = code_group[np.asarray(Image.open(mask_path))]
        h, w = mask.shape
        for y in range(0, h - size + 1, stride):
            for x in range(0, w - size + 1, stride):
                window = mask[y:y + size, x:x + size]
                counts = np.bincount(window[window >= 0], minlength=len(names))
                g = int(counts.argmax())
                if counts[g] >= purity * size * size:
                    patches.append(Patch(photo, names[g], (x, y, x + size, y + size)))
    return patches


def _write(camvid: Path, patches: Sequence[Patch], folder: Path) -> Counter:
    images: dict[str, Image.Image] = {}
    counts: Counter = Counter()
    for p in patches:
        if p.photo not in images:
            images[p.photo] = Image.open(camvid / "images" / f"{p.photo}.png").convert("RGB")
        out = folder / p.group
        out.mkdir(parents=True, exist_ok=True)
        images[p.photo].crop(p.box).save(out / f"{p.photo}_{p.box[0]}_{p.box[1]}.png")
        counts[p.group] += 1
    return counts


def _take(patches: Sequence[Patch], n: int, rng: random.Random) -> list[Patch]:
    """n patches (all if fewer), spread over photos: round-robin over the photos in random order."""
    by_photo: dict[str, list[Patch]] = defaultdict(list)
    for p in patches:
        by_photo[p.photo].append(p)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_photo.items())]
    rng.shuffle(pools)
    taken: list[Patch] = []
    while len(taken) < n and any(pools):
        for pool in pools:
            if pool and len(taken) < n:
                taken.append(pool.pop())
    return taken


def build(camvid: Path, out: Path, *, size: int = 16, stride: int = 8, purity: float = 0.8,
          pattern: str = "AABC", shots: int = 10, max_pretrain: int = 400, max_test: int = 150,
          pretrain_groups: Mapping[str, Sequence[str]] = PRETRAIN_GROUPS,
          finetune_groups: Mapping[str, Sequence[str]] = FINETUNE_GROUPS, seed: int = 0) -> PatchSets:
    """Write out/pretrain/{train,valid}/<class> (photos A, valid = a fifth of A's photos) and
    out/finetune/{train,valid}/<class> (train: `shots` patches per class from photos B; valid: up to max_test
    per class from photos C). The seed picks which patches are taken."""
    rng = random.Random(seed)
    photos = [p.name.removesuffix("_P.png") for p in sorted((camvid / "labels").glob("*_P.png"))]
    role = photo_roles(photos, pattern)
    pre = cut_patches(camvid, pretrain_groups, size, stride, purity)
    fin = cut_patches(camvid, finetune_groups, size, stride, purity)
    a_photos = sorted(p for p in photos if role[p] == "A")
    a_valid = set(a_photos[2::5])  # a fifth of A, interleaved, only to watch pretraining
    counts: dict[str, dict[str, dict[str, int]]] = {"pretrain": {}, "finetune": {}}
    for split, keep in (("train", lambda p: role[p.photo] == "A" and p.photo not in a_valid),
                        ("valid", lambda p: p.photo in a_valid)):
        chosen = [q for g in pretrain_groups
                  for q in _take([p for p in pre if p.group == g and keep(p)],
                                 max_pretrain if split == "train" else max_pretrain // 4, rng)]
        counts["pretrain"][split] = dict(_write(camvid, chosen, out / "pretrain" / split))
    for split, letter, n in (("train", "B", shots), ("valid", "C", max_test)):
        chosen = [q for g in finetune_groups
                  for q in _take([p for p in fin if p.group == g and role[p.photo] == letter], n, rng)]
        counts["finetune"][split] = dict(_write(camvid, chosen, out / "finetune" / split))
    roles = {r: sorted(p for p in photos if role[p] == r) for r in sorted(set(pattern))}
    return PatchSets(out / "pretrain", out / "finetune", roles, counts)
