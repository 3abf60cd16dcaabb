"""A ratings data set: a delimited file of user, item, rating[, timestamp] plus an optional item metadata file.

Ids are strings (whatever the file holds); the model indexes them through sorted vocabularies. Which file and
which columns are the job's options (RatingsFormat); the defaults fit fast.ai's ratings.csv and MovieLens' u.data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fineserve_common.configs import RatingsFormat

from ..errors import DatasetError
from .delimited import IS_VALID, column_index, is_number, read_rows, valid_flags

RATINGS_SUFFIXES = (".csv", ".tsv", ".data", ".txt")
"""A dataset whose ratings_file is not named must hold exactly one file with one of these suffixes."""


@dataclass(frozen=True)
class Ratings:
    user_ids: list[str]
    """Sorted vocabulary: user index -> id."""
    item_ids: list[str]
    users: np.ndarray
    """int64 user index of each rating."""
    items: np.ndarray
    ratings: np.ndarray
    """float32."""
    timestamps: np.ndarray | None
    titles: dict[str, str]
    """Item id -> title, for the items the metadata file names."""
    is_valid: np.ndarray | None = None
    """bool per rating: the file's is_valid column (a header names it), the split it asks for."""

    def __len__(self) -> int:
        return len(self.ratings)


def inside(root: Path, relative: str, what: str) -> Path:
    """A file under the dataset directory; names that lead out of it are refused."""
    path = (root / relative).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise DatasetError(f"{what} {relative!r} is not a file inside the dataset")
    return path


def find_ratings_file(root: Path, name: str) -> Path:
    if name:
        return inside(root, name, "ratings_file")
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in RATINGS_SUFFIXES)
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise DatasetError(f"the dataset needs exactly one {'/'.join(RATINGS_SUFFIXES)} file or an explicit "
                           f"ratings_file (found {listed})")
    return found[0]


def read_ratings(dataset_dir: str | Path, fmt: RatingsFormat) -> Ratings:
    root = Path(dataset_dir)
    path = find_ratings_file(root, fmt.ratings_file)
    rows = read_rows(path, fmt.separator)
    width = len(rows[0])
    if width < 3:
        raise DatasetError(f"{path.name} has {width} column(s); ratings need user, item and rating")
    rating_guess = column_index(fmt.rating_column, rows[0], 2, "rating_column", width)
    header = rows[0] if not is_number(rows[0][rating_guess]) else None
    body = rows[1:] if header else rows
    if not body:
        raise DatasetError(f"{path.name} holds no ratings")
    cols = [column_index(spec, header, default, name, width) for spec, default, name in (
        (fmt.user_column, 0, "user_column"), (fmt.item_column, 1, "item_column"),
        (fmt.rating_column, 2, "rating_column"), (fmt.timestamp_column, 3, "timestamp_column"))]
    if header and IS_VALID in header:  # the split column: never a timestamp by default, never a rating
        split_col = header.index(IS_VALID)
        if cols[3] == split_col and not fmt.timestamp_column:
            cols[3] = -1
        if split_col in cols:
            raise DatasetError(f"{path.name}: {IS_VALID} splits the ratings into training and validation; it "
                               "cannot be the user, item, rating or timestamp column")
    short = next((n for n, row in enumerate(body) if len(row) <= max(cols)), None)
    if short is not None:
        raise DatasetError(f"{path.name} row {short + 1 + bool(header)} has {len(body[short])} fields, "
                           f"expected at least {max(cols) + 1}")
    table = np.array(body, dtype=object)
    try:
        ratings = table[:, cols[2]].astype(np.float32)
        timestamps = table[:, cols[3]].astype(np.float64) if cols[3] >= 0 else None
    except ValueError as e:
        raise DatasetError(f"{path.name}: ratings and timestamps must be numbers ({e})") from e
    if not np.isfinite(ratings).all():
        raise DatasetError(f"{path.name}: ratings must be finite numbers")
    user_ids, users = np.unique(table[:, cols[0]].astype(str), return_inverse=True)
    item_ids, items = np.unique(table[:, cols[1]].astype(str), return_inverse=True)
    item_list = [str(i) for i in item_ids]
    titles = read_titles(root, fmt, set(item_list)) if fmt.items_file else {}
    is_valid = valid_flags(list(table[:, header.index(IS_VALID)]), path.name) if header and IS_VALID in header else None
    return Ratings([str(u) for u in user_ids], item_list, users.astype(np.int64), items.astype(np.int64),
                   ratings, timestamps, titles, is_valid)


def read_titles(root: Path, fmt: RatingsFormat, known: set[str]) -> dict[str, str]:
    """Item id -> title for the known items; a first row whose id is unknown is taken for a header."""
    rows = read_rows(inside(root, fmt.items_file, "items_file"), fmt.items_separator)
    width = len(rows[0])
    header = rows[0]
    id_col = column_index(fmt.item_id_column, header, 0, "item_id_column", width)
    title_col = column_index(fmt.title_column, header, 1, "title_column", width)
    if title_col < 0:
        raise DatasetError(f"items_file {fmt.items_file!r} has one column; it needs an id and a title")
    return {row[id_col]: row[title_col] for row in rows if len(row) > max(id_col, title_col) and row[id_col] in known}


def split_ratings(data: Ratings, valid_pct: float, seed: int, by_time: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) row indices: the file's is_valid column when it has one, else a seeded random share or the
    latest valid_pct of the ratings by time."""
    if data.is_valid is not None:
        return np.flatnonzero(~data.is_valid), np.flatnonzero(data.is_valid)
    n = len(data)
    n_valid = max(1, round(n * valid_pct))
    if n_valid >= n:
        raise DatasetError(f"{n} rating(s) are too few to hold {valid_pct:.0%} out for validation")
    if by_time:
        if data.timestamps is None:
            raise DatasetError("the time split needs a timestamp column")
        order = np.argsort(data.timestamps, kind="stable")
    else:
        order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n - n_valid]), np.sort(order[n - n_valid:])
