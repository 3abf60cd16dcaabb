"""Checks that a dataset directory holds the layout it was declared with, and summarises it."""

from __future__ import annotations

from pathlib import Path

from fineserve.v1 import datasets_pb2
from service.table_layouts import CSV_LAYOUTS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
TRAIN_NAMES = ("train",)
VALID_NAMES = ("valid", "val")


class LayoutError(ValueError):
    """The files do not match the declared layout (INVALID_ARGUMENT)."""


def _class_counts(folder: Path) -> dict[str, int]:
    counts = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            d.name.encode("utf-8")
        except UnicodeEncodeError:
            raise LayoutError(f"folder {d.name!r} has a name that is not valid UTF-8") from None
        counts[d.name] = sum(1 for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    return counts


def _first(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def summarize_image_folders(root: Path) -> datasets_pb2.DatasetSummary:
    """train/<class>/ (+ valid/<class>/), or <class>/ folders directly under root."""
    train = _first(root, TRAIN_NAMES)
    valid = _first(root, VALID_NAMES) if train else None
    train_counts = _class_counts(train or root)
    valid_counts = _class_counts(valid) if valid else {}
    classes = sorted(c for c, n in train_counts.items() if n > 0)
    where = f"{(train or root).name}/"
    if len(classes) < 2:
        raise LayoutError(f"IMAGE_FOLDERS needs at least 2 class folders with images under {where}; "
                          f"found {len(classes)} ({', '.join(classes) or 'none'})")
    empty = sorted(c for c, n in train_counts.items() if n == 0)
    if empty:
        raise LayoutError(f"class folders without images under {where}: {', '.join(empty)}")
    unknown = sorted(c for c, n in valid_counts.items() if n and c not in classes)
    if unknown:
        raise LayoutError(f"valid/ has classes that train/ lacks: {', '.join(unknown)}")
    return datasets_pb2.DatasetSummary(classes=classes, train_items=sum(train_counts.values()),
                                       valid_items=sum(valid_counts.values()))


SUMMARIZERS = {datasets_pb2.IMAGE_FOLDERS: summarize_image_folders, **CSV_LAYOUTS}
