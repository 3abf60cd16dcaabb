"""The "images + labels CSV" data set layout (multi-label): labels.csv of file name and space-separated tags.

labels.csv has a header row; its first column names an image relative to the data set root, its second the
image's labels separated by spaces (none is allowed: an image showing no label). An optional `is_valid`
column (true/false or 1/0, fast.ai's convention) picks the validation images; without it they are split off
at random by valid_pct.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ..errors import DatasetError
from .folders import ImageFolders, Item, random_split, readable_images

LABELS_FILE = "labels.csv"
TRUE = frozenset({"1", "true", "yes"})
FALSE = frozenset({"0", "false", "no", ""})


def _rows(csv_path: Path) -> list[tuple[str, list[str], bool | None]]:
    """(file name, labels, is_valid or None) per row."""
    try:
        with open(csv_path, encoding="utf-8", newline="") as f:
            table = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read {csv_path}: {e}") from e
    if len(table) < 2 or len(table[0]) < 2:
        raise DatasetError(f"{csv_path} needs a header row (file name, labels[, is_valid]) and at least one row")
    header = [h.strip().lower() for h in table[0]]
    valid_col = header.index("is_valid") if "is_valid" in header else None
    rows = []
    for line, row in enumerate(table[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip():
            raise DatasetError(f"{csv_path} line {line}: expected a file name and labels, got {row!r}")
        flag = None
        if valid_col is not None:
            cell = row[valid_col].strip().lower() if valid_col < len(row) else ""
            if cell not in TRUE | FALSE:
                raise DatasetError(f"{csv_path} line {line}: is_valid must be true/false or 1/0, got {cell!r}")
            flag = cell in TRUE
        rows.append((row[0].strip(), row[1].split(), flag))
    return rows


def _image_path(root: Path, name: str, csv_path: Path) -> Path:
    """The named file, which must lie inside the data set (no absolute names, no way out through ..)."""
    path = (root / name).resolve()
    if root.resolve() not in path.parents:
        raise DatasetError(f"{csv_path} names {name!r}, which is outside the data set")
    return path


def scan_labels_csv(root: str | Path, valid_pct: float, seed: int) -> ImageFolders:
    """Labels (sorted) and (file, multi-hot vector) items per split; files PIL cannot read are skipped, files
    that do not exist are an error (the CSV and the images disagree)."""
    root = Path(root)
    csv_path = root / LABELS_FILE
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path} not found: a labels-CSV data set needs {LABELS_FILE} at its root")
    rows = _rows(csv_path)
    labels = sorted({tag for _, tags, _ in rows for tag in tags})
    if not labels:
        raise DatasetError(f"{csv_path} lists no labels")
    paths = {name: _image_path(root, name, csv_path) for name, _, _ in rows}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise DatasetError(f"{csv_path} lists {len(missing)} file(s) that do not exist: {', '.join(missing[:5])}")
    skipped: list[Path] = []
    readable = set(readable_images(list(paths.values()), skipped))
    index = {label: i for i, label in enumerate(labels)}
    train: list[Item] = []
    valid: list[Item] = []
    for name, tags, is_valid in rows:
        if paths[name] not in readable:
            continue
        target = torch.zeros(len(labels))
        target[[index[t] for t in tags]] = 1.0
        (valid if is_valid else train).append((paths[name], target))
    if not any(flag for _, _, flag in rows):
        train, valid = random_split(train, valid_pct, seed)
    if len(train) < 2 or not valid:
        raise DatasetError(
            f"{csv_path}: need at least 2 training and 1 validation image, found {len(train)} and {len(valid)}"
        )
    return ImageFolders(labels, train, valid, skipped)
