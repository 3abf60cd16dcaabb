"""Reading the delimited text files of the ratings and tabular layouts (CSV, TSV, pipe-separated, ...)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DatasetError

SEPARATORS = (",", "\t", ";", "|")
"""Candidates for an unnamed separator: the one that occurs most often in the first line wins."""
ENCODINGS = ("utf-8", "latin-1")
"""Tried in order; latin-1 decodes any byte, so old files such as MovieLens' u.item still read."""


def read_text(path: Path) -> str:
    data = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError:
            continue
    raise DatasetError(f"{path.name} is not text")  # unreachable: latin-1 decodes everything


def sniff_separator(first_line: str) -> str:
    counts = [first_line.count(sep) for sep in SEPARATORS]
    best = max(range(len(SEPARATORS)), key=lambda i: counts[i])
    if counts[best] == 0:
        raise DatasetError(f"cannot tell the separator of {first_line[:80]!r}: none of , TAB ; | occurs; "
                           "name it with the separator option")
    return SEPARATORS[best]


def read_rows(path: Path, separator: str = "") -> list[list[str]]:
    """Every non-blank row of the file, fields stripped of surrounding spaces."""
    text = read_text(path)
    lines = text.splitlines()
    if not lines:
        raise DatasetError(f"{path.name} is empty")
    sep = separator or sniff_separator(lines[0])
    return [[field.strip() for field in row] for row in csv.reader(lines, delimiter=sep) if any(row)]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def column_index(spec: str, header: list[str] | None, default: int, what: str, width: int) -> int:
    """A column named by its header name or by its 0-based position; "" = default (negative: none)."""
    if not spec:
        return default if default < width else -1
    if header is not None and spec in header:
        return header.index(spec)
    if spec.isdigit() and int(spec) < width:
        return int(spec)
    names = f"; columns are {', '.join(header)}" if header else " (the file has no header: use a 0-based position)"
    raise DatasetError(f"{what} {spec!r} is not a column of the file{names}")


IS_VALID = "is_valid"
"""The optional column of the CSV layouts that marks the validation rows, as the image and text layouts' does:
with it the split is the data set's own (valid_pct and a ratings job's split are not used); never a feature."""
VALID_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def valid_flags(values: list[str], where: str) -> np.ndarray:
    """The is_valid column as booleans: each value true/false or 1/0 (any case), at least one row of each."""
    flags = []
    for n, value in enumerate(values, 1):
        flag = VALID_FLAGS.get(value.strip().lower())
        if flag is None:
            raise DatasetError(f"{where} data row {n}: {IS_VALID} must be true/false or 1/0, got {value[:40]!r}")
        flags.append(flag)
    marked = np.array(flags, dtype=bool)
    if marked.all() or not marked.any():
        raise DatasetError(f"{where}: the {IS_VALID} column marks {'every' if marked.all() else 'no'} row as "
                           "validation; it needs training and validation rows")
    return marked
