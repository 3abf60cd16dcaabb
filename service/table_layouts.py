"""Layout checks for the delimited-text layouts (RATINGS_CSV, TABULAR_CSV) and single-CSV uploads.

Which file and which columns a job reads are options of the job (CollabOptions / TabularOptions), so the check
at registration is that the directory holds delimited text; the summary counts the rows of the file a job
would read by default (0 when that is ambiguous).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fineserve.v1 import datasets_pb2

RATINGS_SUFFIXES = (".csv", ".tsv", ".data", ".txt")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
UPLOADED_CSV = "data.csv"
"""Name a single uploaded CSV gets inside its dataset directory."""


def _candidates(root: Path, suffixes: tuple[str, ...], layout: str) -> list[Path]:
    from service.dataset_layout import LayoutError  # that module lists these summarizers, so import late

    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise LayoutError(f"{layout} needs a {'/'.join(suffixes)} file at the top of the dataset; found none")
    return found


def _data_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _has_header(path: Path) -> bool:
    """The engine's rule: a first row whose third field (the default rating column) is not a number."""
    with open(path, "rb") as f:
        first = f.readline().decode("latin-1")
    sep = max(",\t;|", key=first.count)
    fields = first.strip().split(sep)
    try:
        float(fields[2])
    except (IndexError, ValueError):
        return True
    return False


def summarize_ratings(root: Path) -> datasets_pb2.DatasetSummary:
    found = _candidates(root, RATINGS_SUFFIXES, "RATINGS_CSV")
    rows = _data_lines(found[0]) - _has_header(found[0]) if len(found) == 1 else 0
    return datasets_pb2.DatasetSummary(train_items=rows)


def summarize_table(root: Path) -> datasets_pb2.DatasetSummary:
    found = _candidates(root, TABLE_SUFFIXES, "TABULAR_CSV")
    rows = max(_data_lines(found[0]) - 1, 0) if len(found) == 1 else 0  # minus the header
    return datasets_pb2.DatasetSummary(train_items=rows)


def store_single_csv(upload: Path, dest: Path) -> tuple[int, int]:
    """An uploaded single CSV becomes dest/data.csv; returns (files, bytes) like archive extraction."""
    dest.mkdir(parents=True)
    shutil.copyfile(upload, dest / UPLOADED_CSV)
    return 1, (dest / UPLOADED_CSV).stat().st_size


CSV_LAYOUTS = {datasets_pb2.RATINGS_CSV: summarize_ratings, datasets_pb2.TABULAR_CSV: summarize_table}
