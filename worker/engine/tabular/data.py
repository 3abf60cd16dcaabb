"""A table for the tabular model: categorical columns -> vocabulary indices (0 = unknown), continuous columns ->
filled, normalised numbers with an is-missing flag, the target -> class index or a standardised number.

TabularSchema holds everything learnt from the training rows and is saved in the model card as JSON, so serving
encodes key-value rows exactly as training encoded the file.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import DatasetError, EngineError
from .delimited import IS_VALID, is_number, read_rows
from .ratings import inside

UNKNOWN = "#unknown"
"""Vocabulary entry 0 of every categorical column: values not seen in training map here."""
MAX_CLASSES = 20
"""An all-numeric target with more distinct values than this is taken for a regression target."""
DATA_SUFFIXES = (".csv", ".tsv", ".txt")


class InvalidRow(EngineError):
    """A prediction row the model cannot take (unknown column, non-numeric continuous value)."""


@dataclass(frozen=True)
class TabularSchema:
    target: str
    categorical: list[str]
    continuous: list[str]
    vocabularies: dict[str, list[str]]
    """Per categorical column: [UNKNOWN, values sorted...]."""
    stats: dict[str, dict[str, float]]
    """Per continuous column: mean and std of the filled training values, fill (the training median)."""
    missing_flags: list[str]
    """Continuous columns that had missing values in training: each gets a 0/1 is-missing input."""
    classes: list[str]
    """Classification targets, sorted; empty for regression."""
    target_stats: dict[str, float]
    """Regression: mean and std that standardise the target."""

    @property
    def regression(self) -> bool:
        return not self.classes

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocabularies[c]) for c in self.categorical]

    @property
    def n_continuous(self) -> int:
        return len(self.continuous) + len(self.missing_flags)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TabularSchema:
        return cls(**data)

    def encode(self, rows: Sequence[Mapping[str, str]]) -> torch.Tensor:
        """(N, n_categorical + n_continuous) float inputs; a missing key counts as a missing value."""
        index = {c: {v: i for i, v in enumerate(self.vocabularies[c])} for c in self.categorical}
        flagged = set(self.missing_flags)
        encoded = []
        for r, row in enumerate(rows):
            cats = [float(index[c].get(str(row.get(c, "")).strip(), 0)) for c in self.categorical]
            conts, flags = [], []
            for c in self.continuous:
                value = _number(str(row.get(c, "")).strip(), c, r)
                if c in flagged:
                    flags.append(float(value is None))
                stat = self.stats[c]
                conts.append(((stat["fill"] if value is None else value) - stat["mean"]) / stat["std"])
            encoded.append(cats + conts + flags)
        return torch.tensor(encoded, dtype=torch.float32).view(len(rows), len(self.categorical) + self.n_continuous)

    def encode_target(self, values: Sequence[str]) -> torch.Tensor:
        if self.regression:
            y = torch.tensor([float(v) for v in values], dtype=torch.float32)
            return (y - self.target_stats["mean"]) / self.target_stats["std"]
        index = {c: i for i, c in enumerate(self.classes)}
        return torch.tensor([index.get(v, -1) for v in values], dtype=torch.int64)


def _number(text: str, col: str, row: int) -> float | None:
    if text == "" or text.lower() in ("nan", "na", "null", "?"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidRow(f"row {row}: continuous column {col!r} needs a number, got {text[:40]!r}") from None
    return value if math.isfinite(value) else None


def read_table(dataset_dir: str | Path, data_file: str, separator: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the dataset's CSV; short rows are padded with empty (missing) values."""
    root = Path(dataset_dir)
    if data_file:
        path = inside(root, data_file, "data_file")
    else:
        found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        if len(found) != 1:
            raise DatasetError(f"the dataset needs exactly one {'/'.join(DATA_SUFFIXES)} file or an explicit "
                               f"data_file (found {', '.join(p.name for p in found) or 'none'})")
        path = found[0]
    rows = read_rows(path, separator)
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise DatasetError(f"{path.name}: the header repeats a column name")
    if not body:
        raise DatasetError(f"{path.name} has a header but no rows")
    return header, [row + [""] * (len(header) - len(row)) for row in body]


def fit_schema(header: list[str], rows: list[list[str]], target: str, categorical: Sequence[str],
               continuous: Sequence[str], regression: bool | None) -> TabularSchema:
    """Learn vocabularies, fill values and normalisation from the (training) rows."""
    missing = [c for c in (target, *categorical, *continuous) if c not in header]
    if missing:
        raise DatasetError(f"column(s) {', '.join(missing)} not in the table; columns are {', '.join(header)}")
    if IS_VALID in (target, *categorical, *continuous):
        raise DatasetError(f"{IS_VALID} is the column that splits the rows into training and validation; it "
                           "cannot be the target or a feature")
    col = {name: [row[header.index(name)] for row in rows] for name in header}
    if not categorical and not continuous:
        features = [c for c in header if c not in (target, IS_VALID)]
        continuous = [c for c in features if all(v == "" or is_number(v) for v in col[c])]
        categorical = [c for c in features if c not in continuous]
    vocabularies = {c: [UNKNOWN, *sorted(set(col[c]))] for c in categorical}
    stats: dict[str, dict[str, float]] = {}
    flags = []
    for c in continuous:
        values = [_number(v, c, i) for i, v in enumerate(col[c])]
        present = [v for v in values if v is not None]
        if not present:
            raise DatasetError(f"continuous column {c!r} has no numbers")
        fill = statistics.median(present)
        filled = [fill if v is None else v for v in values]
        std = statistics.pstdev(filled)
        stats[c] = {"mean": statistics.fmean(filled), "std": std if std > 0 else 1.0, "fill": fill}
        if len(present) < len(values):
            flags.append(c)
    targets = col[target]
    numeric = all(is_number(v) for v in targets)
    if regression is None:
        regression = numeric and len(set(targets)) > MAX_CLASSES
    if regression and not numeric:
        raise DatasetError(f"regression target {target!r} has values that are not numbers")
    classes = [] if regression else sorted(set(targets))
    if not regression and len(classes) < 2:
        raise DatasetError(f"target {target!r} has {len(classes)} distinct value(s); classification needs 2")
    target_stats: dict[str, float] = {}
    if regression:
        numbers = [float(v) for v in targets]
        target_stats = {"mean": statistics.fmean(numbers), "std": statistics.pstdev(numbers) or 1.0}
    return TabularSchema(target, list(categorical), list(continuous), vocabularies, stats, flags, classes,
                         target_stats)


def check_row_keys(schema: TabularSchema, rows: Sequence[Mapping[str, str]]) -> None:
    """Keys must be feature columns (the target and is_valid, so a training row can be sent as it is, are
    tolerated and ignored), so a typo is not silently 'missing'."""
    known = {*schema.categorical, *schema.continuous, schema.target, IS_VALID}
    for r, row in enumerate(rows):
        unknown = sorted(set(row) - known)
        if unknown:
            raise InvalidRow(f"row {r}: unknown column(s) {', '.join(unknown)}; the model reads "
                             f"{', '.join([*schema.categorical, *schema.continuous])}")
