"""The door's check of the CSV layouts' is_valid column (RATINGS_CSV, TABULAR_CSV): counted per split when the
header has one, each value true/false or 1/0, at least one row of each, refused with a message naming the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from fineserve.v1 import datasets_pb2
from service.dataset_layout import SUMMARIZERS, LayoutError

TABLE, RATINGS = datasets_pb2.TABULAR_CSV, datasets_pb2.RATINGS_CSV


def _summary(tmp_path: Path, layout: int, text: str, name: str = "data.csv") -> datasets_pb2.DatasetSummary:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return SUMMARIZERS[layout](tmp_path)


def test_an_is_valid_column_gives_the_split_counts(tmp_path: Path) -> None:
    table = "age,job,is_valid,salary\n30,a,false,x\n40,b,0,y\n\n50,c,TRUE,x\n60,d,1,y\n70,e,False,x\n"
    (tmp_path / "t").mkdir()
    summary = _summary(tmp_path / "t", TABLE, table)
    assert (summary.train_items, summary.valid_items) == (3, 2)
    (tmp_path / "r").mkdir()
    ratings = "\ufeffuser\titem\trating\tis_valid\nu1\ti1\t4\t0\nu2\ti1\t3\t1\n"
    summary = _summary(tmp_path / "r", RATINGS, ratings, "ratings.tsv")
    assert (summary.train_items, summary.valid_items) == (1, 1)
    # without the column: every row counts as training, the job holds out valid_pct
    (tmp_path / "n").mkdir()
    summary = _summary(tmp_path / "n", TABLE, "age,salary\n30,x\n40,y\n")
    assert (summary.train_items, summary.valid_items) == (2, 0)


@pytest.mark.parametrize(("layout", "text", "message"), [
    (TABLE, "a,is_valid\n1,true\n2,maybe\n", "data row 2: is_valid must be true/false or 1/0, got 'maybe'"),
    (TABLE, "a,is_valid\n1,true\n2\n", "data row 2: is_valid must be true/false or 1/0, got ''"),
    (TABLE, "a,is_valid\n1,true\n2,1\n", "marks every row as validation"),
    (TABLE, "a;is_valid\n1;0\n2;false\n", "marks no row as validation"),
    (TABLE, "a,is_valid\n1,0\n2," + "y" * 5000 + "\n", "(5000 characters)"),
    (RATINGS, "user,item,rating,is_valid\nu,i,1,yes\n", "data row 1: is_valid must be"),
])
def test_bad_is_valid_columns_are_refused(tmp_path: Path, layout: int, text: str, message: str) -> None:
    with pytest.raises(LayoutError) as refused:
        _summary(tmp_path, layout, text)
    assert message in refused.value.message and len(refused.value.message) < 400


def test_a_headerless_ratings_file_has_no_is_valid_column(tmp_path: Path) -> None:
    summary = _summary(tmp_path, RATINGS, "1\t2\t5\t881250949\n3\t4\t1\t891717742\n", "u.data")
    assert (summary.train_items, summary.valid_items) == (2, 0)
