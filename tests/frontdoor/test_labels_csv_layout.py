"""The front door's check of IMAGE_LABELS_CSV datasets: labels, split counts, and refusals that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fineserve_common.errors import InvalidArgument
from service.dataset_layout import LayoutError, summarize_labels_csv


def dataset(root: Path, rows: list[str], header: str = "fname,labels") -> Path:
    (root / "img").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "c.PNG"):
        (root / "img" / name).write_bytes(b"not decoded here")
    (root / "labels.csv").write_text("\n".join([header, *rows, ""]))
    return root


def test_labels_and_is_valid_counts(tmp_path: Path) -> None:
    root = dataset(
        tmp_path, ["img/a.jpg,tv chair,false", "img/b.png,chair,1", "", "img/c.PNG,,0"], "fname,labels,is_valid"
    )
    summary = summarize_labels_csv(root)
    assert list(summary.classes) == ["chair", "tv"]
    assert (summary.train_items, summary.valid_items) == (2, 1)


def test_coco_tiny_summary(shared_data: Path) -> None:
    summary = summarize_labels_csv(shared_data / "coco_tiny")
    assert list(summary.classes) == ["book", "chair", "couch", "remote", "tv", "vase"]
    assert (summary.train_items, summary.valid_items) == (200, 0)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["../secret.jpg,tv"], "not an image file inside the dataset"),
        (["/etc/passwd,tv"], "not an image file inside the dataset"),
        (["img/missing.jpg,tv"], "line 2: 'img/missing.jpg' does not exist"),
        (["img/a.jpg"], "line 2: expected a file name and labels"),
        (["img/a.jpg,"], "lists no labels"),
        ([], "at least one row"),
    ],
)
def test_refusals_name_the_problem(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        summarize_labels_csv(dataset(tmp_path, rows))


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"labels\.csv"):
        summarize_labels_csv(tmp_path)


@pytest.mark.parametrize(("name", "message"), [
    ("img/a\0.png", "line 2: file name .* holds a NUL byte"),
    ("img/" + "a" * 5000 + ".png", "line 2: file name is 5008 characters long"),
    ("img/a.jpg\x1b[2J", "control character"),
    ("img/../img/a.jpg", "must not contain '..'"),
])
def test_unusable_file_names_are_refused_naming_the_line(tmp_path: Path, name: str, message: str) -> None:
    """Issue 24, fault 4: a NUL byte or an over-long name was INTERNAL (the file system's ValueError/OSError)."""
    with pytest.raises(LayoutError, match=message) as refused:
        summarize_labels_csv(dataset(tmp_path, [f"{name},tv"]))
    assert len(refused.value.message) < 300


def test_labels_are_printable_text(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"line 2: label .* control character"):
        summarize_labels_csv(dataset(tmp_path, ["img/a.jpg,tv\x07"]))
