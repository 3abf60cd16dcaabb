"""Layout checks for the delimited-text layouts (RATINGS_CSV, TABULAR_CSV) and single-CSV uploads.

Which file and which columns a job reads are options of the job (CollabOptions / TabularOptions), so the check
at registration is that the directory holds delimited text; the summary counts the rows of the file a job
would read by default (0 when that is ambiguous). When that file's header has an `is_valid` column (the split
the jobs then use, as for the image layouts), each of its values must be true/false or 1/0, with at least one
row of each, and the summary counts the rows of each split.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

from fineserve.v1 import datasets_pb2
from fineserve_common.names import clip

RATINGS_SUFFIXES = (".csv", ".tsv", ".data", ".txt")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
UPLOADED_CSV = "data.csv"
"""Name a single uploaded CSV gets inside its dataset directory."""
IS_VALID = "is_valid"
VALID_FLAGS = {"true": True, "1": True, "false": False, "0": False}
"""The engine's (worker/engine/tabular/delimited.py) values of the is_valid column."""
SEPARATORS = ",\t;|"
"""The engine's candidates for the separator: the most frequent in the first line."""


def _candidates(root: Path, suffixes: tuple[str, ...], layout: str) -> list[Path]:
    from service.dataset_layout import LayoutError  # that module lists these summarizers, so import late

    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise LayoutError(f"{layout} needs a {'/'.join(suffixes)} file at the top of the dataset; found none")
    return found


def _data_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _layout_error(message: str) -> Exception:
    from service.dataset_layout import LayoutError  # that module lists these summarizers, so import late

    return LayoutError(message)


def _csv_rows(path: Path) -> Iterator[list[str]]:
    """The file's non-blank rows as the engine reads them (UTF-8, else Latin-1; the separator sniffed from the
    first line), streamed: the file is as large as the upload limits allow."""
    encoding = "utf-8-sig"
    try:
        with open(path, encoding=encoding) as f:
            for _ in f:
                pass
    except UnicodeDecodeError:
        encoding = "latin-1"
    with open(path, encoding=encoding, newline="") as f:
        sep = max(SEPARATORS, key=f.readline().count)
        f.seek(0)
        try:
            for row in csv.reader(f, delimiter=sep):
                if any(field.strip() for field in row):
                    yield [field.strip() for field in row]
        except csv.Error as e:
            raise _layout_error(f"{clip(path.name)} is not readable delimited text: {e}") from None


def _split_counts(path: Path, layout: str) -> tuple[int, int] | None:
    """(training rows, validation rows) by the header's is_valid column; None when the header has none."""
    rows = _csv_rows(path)
    header = next(rows, [])
    if IS_VALID not in header:
        return None
    col = header.index(IS_VALID)
    counts = {False: 0, True: 0}
    for n, row in enumerate(rows, 1):
        value = row[col] if col < len(row) else ""
        flag = VALID_FLAGS.get(value.lower())
        if flag is None:
            raise _layout_error(f"{layout} {clip(path.name)} data row {n}: {IS_VALID} must be true/false or 1/0, "
                                f"got {clip(value)}")
        counts[flag] += 1
    if not counts[False] or not counts[True]:
        raise _layout_error(f"{layout} {clip(path.name)}: the {IS_VALID} column marks "
                            f"{'every' if counts[True] else 'no'} row as validation; it needs training and "
                            "validation rows (or no is_valid column, for a random split)")
    return counts[False], counts[True]


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
    if len(found) == 1 and _has_header(found[0]) and (split := _split_counts(found[0], "RATINGS_CSV")):
        return datasets_pb2.DatasetSummary(train_items=split[0], valid_items=split[1])
    rows = _data_lines(found[0]) - _has_header(found[0]) if len(found) == 1 else 0
    return datasets_pb2.DatasetSummary(train_items=rows)


def summarize_table(root: Path) -> datasets_pb2.DatasetSummary:
    found = _candidates(root, TABLE_SUFFIXES, "TABULAR_CSV")
    if len(found) == 1 and (split := _split_counts(found[0], "TABULAR_CSV")):
        return datasets_pb2.DatasetSummary(train_items=split[0], valid_items=split[1])
    rows = max(_data_lines(found[0]) - 1, 0) if len(found) == 1 else 0  # minus the header
    return datasets_pb2.DatasetSummary(train_items=rows)


def store_single_csv(upload: Path, dest: Path) -> tuple[int, int]:
    """An uploaded single CSV becomes dest/data.csv; returns (files, bytes) like archive extraction."""
    dest.mkdir(parents=True)
    shutil.copyfile(upload, dest / UPLOADED_CSV)
    return 1, (dest / UPLOADED_CSV).stat().st_size


CSV_LAYOUTS = {datasets_pb2.RATINGS_CSV: summarize_ratings, datasets_pb2.TABULAR_CSV: summarize_table}
