"""Checks that a dataset directory holds the layout it was declared with, and summarises it."""

from __future__ import annotations

import csv
from pathlib import Path

from fineserve.v1 import datasets_pb2
from fineserve_common.errors import InvalidArgument
from fineserve_common.names import check_relative_path, check_text, clip
from service.table_layouts import CSV_LAYOUTS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
TRAIN_NAMES = ("train",)
VALID_NAMES = ("valid", "val")


class LayoutError(InvalidArgument):
    """The files do not match the declared layout."""


def _class_counts(folder: Path) -> dict[str, int]:
    counts = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            d.name.encode("utf-8")
        except UnicodeEncodeError:
            raise LayoutError(f"folder {clip(d.name)} has a name that is not valid UTF-8") from None
        check_text(f"class folder {folder.name}/", d.name)
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


LABELS_FILE = "labels.csv"
TRUTHY = ("1", "true", "yes")
FALSY = ("0", "false", "no", "")


def summarize_labels_csv(root: Path) -> datasets_pb2.DatasetSummary:
    """labels.csv at the root (header row; file name and space-separated tags per row; optional is_valid
    column), every listed file an image inside the dataset. Labels (sorted) as classes; items per split
    (valid_items 0 when there is no is_valid column: a random split at training time)."""
    path = root / LABELS_FILE
    if not path.is_file():
        raise LayoutError(f"IMAGE_LABELS_CSV needs {LABELS_FILE} at the dataset's root")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            table = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise LayoutError(f"{LABELS_FILE} is not a readable UTF-8 CSV: {e}") from e
    if len(table) < 2 or len(table[0]) < 2:
        raise LayoutError(f"{LABELS_FILE} needs a header row (file name, labels[, is_valid]) and at least one row")
    header = [h.strip().lower() for h in table[0]]
    valid_col = header.index("is_valid") if "is_valid" in header else None
    real_root = root.resolve()
    labels: set[str] = set()
    counts = {False: 0, True: 0}
    for line, row in enumerate(table[1:], 2):
        name = row[0].strip()
        if len(row) < 2 or not name:
            raise LayoutError(f"{LABELS_FILE} line {line}: expected a file name and labels")
        try:
            check_relative_path(f"{LABELS_FILE} line {line}: file name", name)
        except InvalidArgument as e:
            raise LayoutError(f"{e.message} (not an image file inside the dataset)") from None
        image = (root / name).resolve()
        if real_root not in image.parents or image.suffix.lower() not in IMAGE_SUFFIXES:
            raise LayoutError(f"{LABELS_FILE} line {line}: {clip(name)} is not an image file inside the dataset")
        if not image.is_file():
            raise LayoutError(f"{LABELS_FILE} line {line}: {clip(name)} does not exist")
        flag = row[valid_col].strip().lower() if valid_col is not None and valid_col < len(row) else ""
        if flag not in TRUTHY + FALSY:
            raise LayoutError(f"{LABELS_FILE} line {line}: is_valid must be true/false or 1/0, got {clip(flag)}")
        counts[flag in TRUTHY] += 1
        labels.update(check_text(f"{LABELS_FILE} line {line}: label", label) for label in row[1].split())
    if not labels:
        raise LayoutError(f"{LABELS_FILE} lists no labels")
    return datasets_pb2.DatasetSummary(classes=sorted(labels), train_items=counts[False], valid_items=counts[True])


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
    for i, code in enumerate(codes, 1):
        check_text(f"codes.txt line {i}", code)
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
        raise LayoutError(f"valid.txt names images that images/ lacks: {', '.join(map(clip, unknown[:5]))}")
    return datasets_pb2.DatasetSummary(classes=codes, train_items=len(names) - len(valid_names),
                                       valid_items=len(valid_names))


def summarize_text_csv(root: Path) -> datasets_pb2.DatasetSummary:
    from service.text_layout import summarize  # imported here: text_layout imports LayoutError from this module

    return summarize(root)


SUMMARIZERS = {datasets_pb2.IMAGE_FOLDERS: summarize_image_folders,
               datasets_pb2.IMAGE_LABELS_CSV: summarize_labels_csv,
               datasets_pb2.IMAGE_MASKS: summarize_image_masks, datasets_pb2.TEXT_CSV: summarize_text_csv,
               **CSV_LAYOUTS}
