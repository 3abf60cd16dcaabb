"""The "image folders" data set layout: one folder per class, with or without a train/valid split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import Dataset

from ..errors import DatasetError, InvalidImage
from ..images import check_image, decode_image, is_image_path

Item = tuple[Path, int | torch.Tensor]
"""A file and its target: a class index, or (labels-CSV data sets) a multi-hot float vector of labels."""
T = TypeVar("T")


@dataclass(frozen=True)
class ImageFolders:
    """A scanned data set: sorted class (or label) names, labelled files per split, and files skipped as
    unreadable."""

    classes: list[str]
    train: list[Item]
    valid: list[Item]
    skipped: list[Path]


def _class_dirs(root: Path) -> dict[str, Path]:
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def readable_images(paths: list[Path], skipped: list[Path]) -> list[Path]:
    """The paths whose header PIL can read; the others go to skipped."""
    good = []
    for path in paths:
        try:
            check_image(path.read_bytes())
        except (InvalidImage, OSError):
            skipped.append(path)
        else:
            good.append(path)
    return good


def _image_files(folder: Path, skipped: list[Path]) -> list[Path]:
    """Image files under folder (recursively, sorted); those whose header PIL cannot read go to skipped."""
    return readable_images(sorted(p for p in folder.rglob("*") if is_image_path(p)), skipped)


def _labelled(root: Path, classes: list[str], where: str, skipped: list[Path],
              every_class: bool) -> list[Item]:
    dirs = _class_dirs(root)
    extra = sorted(set(dirs) - set(classes))
    if extra:
        raise DatasetError(f"{where} has class folder(s) that the training set lacks: {', '.join(extra)}")
    items: list[Item] = []
    for label, name in enumerate(classes):
        files = _image_files(dirs[name], skipped) if name in dirs else []
        if every_class and not files:
            raise DatasetError(f"class {name!r} has no readable images (in {root / name})")
        items += [(path, label) for path in files]
    if not items:
        raise DatasetError(f"{where} has no readable images")
    return items


def random_split(items: list[T], valid_pct: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, valid): valid_pct of the items (at least 1, leaving at least 2) drawn by the seed."""
    if len(items) < 3:
        raise DatasetError(f"need at least 3 images to split off a validation set, found {len(items)}")
    n_valid = min(max(1, round(len(items) * valid_pct)), len(items) - 2)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    return [items[i] for i in order[n_valid:]], [items[i] for i in order[:n_valid]]


def scan_image_folders(root: str | Path, valid_pct: float, seed: int) -> ImageFolders:
    """Find classes and files: train/ + valid/ (or val/) when train/ exists, else class folders at the top,
    split at random by valid_pct with the seed. Other top-level entries are ignored when train/ exists."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data set directory not found: {root}")
    has_split = (root / "train").is_dir()
    train_dir = root / "train" if has_split else root
    classes = list(_class_dirs(train_dir))
    if len(classes) < 2:
        raise DatasetError(f"need at least 2 class folders in {train_dir}, found {len(classes)}: {classes}")
    skipped: list[Path] = []
    train = _labelled(train_dir, classes, f"training set {train_dir}", skipped, every_class=True)
    valid_dir = next((d for d in (root / "valid", root / "val") if d.is_dir()), None) if has_split else None
    if valid_dir is None:
        train, valid = random_split(train, valid_pct, seed)
    else:
        valid = _labelled(valid_dir, classes, f"validation set {valid_dir}", skipped, every_class=False)
    if len(train) < 2:
        raise DatasetError(f"need at least 2 training images, found {len(train)}")
    return ImageFolders(classes, train, valid, skipped)


class ImageFileDataset(Dataset):
    """Decodes files lazily with the same decoder as inference; an unreadable file names its path."""

    def __init__(self, items: list[Item], transform: Callable) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        path, label = self.items[i]
        try:
            image = decode_image(path.read_bytes(), i)
        except (InvalidImage, OSError) as e:
            raise DatasetError(f"cannot read training image {path}: {e}") from e
        return self.transform(image), label
