from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from worker.engine import DatasetError
from worker.engine.vision.folders import scan_image_folders

from .synthetic_images import write_class


def test_train_and_valid_folders_ignore_other_entries(tiny_dataset: Path) -> None:
    data = scan_image_folders(tiny_dataset, valid_pct=0.2, seed=0)
    assert data.classes == ["horizontal", "vertical"]
    assert len(data.train) == 24 and len(data.valid) == 8 and not data.skipped
    assert all("test" not in p.parts for p, _ in data.train + data.valid)


def test_val_folder_is_accepted(tiny_dataset: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_dataset / "train", tmp_path / "train")
    shutil.copytree(tiny_dataset / "valid", tmp_path / "val")
    assert len(scan_image_folders(tmp_path, 0.2, 0).valid) == 8


def test_flat_class_folders_are_split_by_valid_pct_and_seed(tiny_dataset: Path) -> None:
    a = scan_image_folders(tiny_dataset / "train", valid_pct=0.25, seed=1)
    assert (len(a.train), len(a.valid)) == (18, 6)
    assert a == scan_image_folders(tiny_dataset / "train", valid_pct=0.25, seed=1)
    assert a.valid != scan_image_folders(tiny_dataset / "train", valid_pct=0.25, seed=2).valid


def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    write_class(tmp_path / "a", False, 3, 0)
    write_class(tmp_path / "b", True, 3, 10)
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    data = scan_image_folders(tmp_path, 0.2, 0)
    assert [p.name for p in data.skipped] == ["broken.png"]
    assert len(data.train) + len(data.valid) == 6


def test_one_class_is_a_dataset_error(tmp_path: Path) -> None:
    write_class(tmp_path / "train" / "only", False, 4, 0)
    with pytest.raises(DatasetError, match="at least 2 class folders"):
        scan_image_folders(tmp_path, 0.2, 0)


def test_class_without_images_is_a_dataset_error(tmp_path: Path) -> None:
    write_class(tmp_path / "a", False, 4, 0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="class 'b' has no readable images"):
        scan_image_folders(tmp_path, 0.2, 0)


def test_validation_class_unknown_to_training_is_a_dataset_error(tiny_dataset: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_dataset / "train", tmp_path / "train")
    write_class(tmp_path / "valid" / "diagonal", True, 2, 0)
    with pytest.raises(DatasetError, match="diagonal"):
        scan_image_folders(tmp_path, 0.2, 0)


def test_missing_directory_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        scan_image_folders(tmp_path / "nope", 0.2, 0)
