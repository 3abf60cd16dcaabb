"""Multi-label classification: the labels-CSV layout, F-beta and tuned thresholds, BCE, a stored multi-label
model as a base. The quality test on coco_tiny is tests/quality/test_multi_label_coco.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from worker.engine import BaseWeights, DatasetError, FineTuneConfig, fine_tune
from worker.engine.regularisation import target_loss
from worker.engine.vision.labels_csv import scan_labels_csv
from worker.engine.vision.multi_label import accuracy_at, fbeta, tune_thresholds

from .synthetic_images import stripes


def write_labels_csv(root: Path, rows: list[str], header: str = "fname,labels") -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(6):
        stripes(i % 2 == 0, i).save(root / "images" / f"{i}.png")
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")


def test_labels_csv_targets_and_is_valid_split(tmp_path: Path) -> None:
    write_labels_csv(
        tmp_path,
        [f"images/{i}.png,{'a b' if i < 2 else 'c'},{'true' if i == 5 else 'false'}" for i in range(6)],
        "fname,labels,is_valid",
    )
    data = scan_labels_csv(tmp_path, 0.2, 0)
    assert data.classes == ["a", "b", "c"]
    assert [p.name for p, _ in data.valid] == ["5.png"] and len(data.train) == 5
    assert data.train[0][1].tolist() == [1.0, 1.0, 0.0] and data.valid[0][1].tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["../outside.png,a"], "outside the data set"),
        (["images/missing.png,a"], "do not exist"),
        (["images/0.png,"], "no labels"),
        (["images/0.png,a,maybe"], "is_valid"),
    ],
)
def test_labels_csv_problems_are_named(tmp_path: Path, rows: list[str], message: str) -> None:
    header = "fname,labels,is_valid" if "maybe" in rows[0] else "fname,labels"
    write_labels_csv(tmp_path, rows, header)
    with pytest.raises(DatasetError, match=message):
        scan_labels_csv(tmp_path, 0.2, 0)


def test_fbeta_accuracy_and_threshold_tuning() -> None:
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    probs = torch.tensor([[0.9, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.1, 0.35]])
    assert fbeta(targets, targets, 0.5, 2.0) == pytest.approx(1.0)
    # image 2 at 0.5: precision 1, recall 1/2 -> F2 = 5 * 0.5 / (4 + 0.5); image 3: nothing predicted -> 0
    assert fbeta(probs, targets, 0.5, 2.0) == pytest.approx((1 + 2.5 / 4.5 + 0) / 3, abs=1e-6)
    assert accuracy_at(probs, targets, 0.5) == pytest.approx(7 / 9)
    tuned = tune_thresholds(probs, targets, 2.0)
    assert fbeta(probs, targets, tuned, 2.0) == pytest.approx(1.0, abs=1e-6)
    assert tuned[1] < 0.3 and tuned[2] < 0.35


def test_multi_label_loss_is_bce_with_smoothing_towards_half() -> None:
    logits, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert target_loss(logits, y, multi_label=True) == pytest.approx(float(plain))
    smoothed = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[0.95, 0.05]]))
    assert target_loss(logits, y, 0.1, multi_label=True) == pytest.approx(float(smoothed))


def test_stored_multi_label_model_as_base_and_card(tmp_path: Path) -> None:
    write_labels_csv(
        tmp_path / "data", [f"images/{i}.png,{'v' if i % 2 == 0 else 'h'}{' x' if i > 3 else ''}" for i in range(6)]
    )
    cfg = {
        "task": "multi_label_classification",
        "base": BaseWeights("none"),
        "image_size": 32,
        "batch_size": 2,
        "epochs": 1,
        "lr": 5e-3,
        "valid_pct": 0.34,
    }
    first = fine_tune(FineTuneConfig(**cfg), tmp_path / "data", tmp_path / "m1").card
    assert first["classes"] == ["h", "v", "x"] and len(first["thresholds"]) == 3
    assert {"accuracy", "fbeta", "valid_loss", "train_loss"} <= set(first["metrics"])
    assert {"fbeta_tuned", "accuracy_tuned"} <= set(first["training_metrics"])
    again = FineTuneConfig(**{**cfg, "base": BaseWeights("store", path=str(tmp_path / "m1")), "freeze_epochs": 1})
    second = fine_tune(again, tmp_path / "data", tmp_path / "m2").card
    assert "stored model" in second["base"]["description"]
    assert json.loads((tmp_path / "m2" / "card.json").read_text())["thresholds"] == second["thresholds"]
