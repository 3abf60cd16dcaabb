"""Checks that a dataset directory holds the layout it was declared with, and summarises it."""

from __future__ import annotations

from pathlib import Path

from fineserve.v1 import datasets_pb2

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


MASK_SUFFIXES = ("_P", "")  # the engine's rule (segmentation_data.py): labels/<stem>_P.png, else <stem>.png
MAX_CODES = 256  # masks are 8-bit


def summarize_image_masks(root: Path) -> datasets_pb2.DatasetSummary:
    """images/, labels/ (a mask per image), codes.txt (a class per line), optional valid.txt (image names).
    Headers only: pixel values are checked by the engine as it reads the masks."""
    codes_file, images, labels = root / "codes.txt", root / "images", root / "labels"
    if not (codes_file.is_file() and images.is_dir() and labels.is_dir()):
        raise LayoutError("IMAGE_MASKS needs images/, labels/ and codes.txt at the top of the data set")
    try:
        codes = [line.strip() for line in codes_file.read_text(encoding="utf-8").rstrip().splitlines()]
    except UnicodeDecodeError:
        raise LayoutError("codes.txt is not UTF-8 text") from None
    if "" in codes or len(set(codes)) != len(codes) or not 2 <= len(codes) <= MAX_CODES:
        raise LayoutError(f"codes.txt must name 2 to {MAX_CODES} distinct classes, one per line, no blank lines")
    names = sorted(p.name for p in images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(names) < 3:
        raise LayoutError(f"IMAGE_MASKS needs at least 3 images under images/, found {len(names)}")
    missing = [n for n in names if not any((labels / f"{Path(n).stem}{s}.png").is_file() for s in MASK_SUFFIXES)]
    if missing:
        raise LayoutError(f"{len(missing)} image(s) without a mask, e.g. {missing[0]}: the mask of images/NAME.ext "
                          "is labels/NAME_P.png or labels/NAME.png")
    valid = root / "valid.txt"
    lines = valid.read_text(encoding="utf-8", errors="replace").splitlines() if valid.is_file() else []
    valid_names = {Path(n.strip()).name for n in lines if n.strip()}
    unknown = sorted(valid_names - set(names))
    if unknown:
        raise LayoutError(f"valid.txt names images that images/ lacks: {', '.join(unknown[:5])}")
    return datasets_pb2.DatasetSummary(classes=codes, train_items=len(names) - len(valid_names),
                                       valid_items=len(valid_names))


SUMMARIZERS = {datasets_pb2.IMAGE_FOLDERS: summarize_image_folders, datasets_pb2.IMAGE_MASKS: summarize_image_masks}
