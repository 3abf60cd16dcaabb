"""A finished image job's interpretation (issue 25): the numbers against hand counts, and each task's against its
served model (Classify, ScoreLabels) or the training's own validation metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from worker.engine import BaseWeights, FineTuneConfig, ImageClassifier, MultiLabelClassifier, fine_tune
from worker.engine.vision.folders import ImageFileDataset
from worker.engine.vision.interpretation import class_metrics, confusion_counts, label_metrics, most_confused

from .synthetic_images import TINY, stripes

CLASSES = ["a", "b", "c"]


def test_confusion_matrix_per_class_metrics_and_most_confused_match_a_hand_count() -> None:
    actual = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = torch.tensor([0, 1, 0, 1, 2, 2, 2, 0, 1])
    counts = confusion_counts(actual, predicted, 3)
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1], [1, 1, 2]]
    a, b, c = class_metrics(counts, CLASSES)
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall, b.f_score) == (pytest.approx(1 / 3), pytest.approx(1 / 2), pytest.approx(0.4))
    assert (c.precision, c.recall, c.support) == (pytest.approx(2 / 3), pytest.approx(1 / 2), 4)
    # every off-diagonal 1, in class order; a cell of 0 is no confusion
    assert most_confused(counts, CLASSES) == [("a", "b", 1), ("b", "c", 1), ("c", "a", 1), ("c", "b", 1)]
    counts[2, 1] = 5
    assert most_confused(counts, CLASSES, k=2) == [("c", "b", 5), ("a", "b", 1)]
    # a class never predicted nor present scores 0, not NaN
    empty = class_metrics(torch.tensor([[3, 0], [0, 0]]), ["x", "y"])[1]
    assert (empty.precision, empty.recall, empty.f_score, empty.support) == (0.0, 0.0, 0.0, 0)


def test_segmentation_iou_per_class_from_pixel_counts() -> None:
    counts = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    ious = [m.iou for m in class_metrics(counts, CLASSES, with_iou=True)]
    assert ious == [pytest.approx(5 / 8), pytest.approx(3 / 6), 0.0]


def test_label_metrics_at_the_served_thresholds_match_a_hand_count() -> None:
    probs = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.3, 0.8], [0.7, 0.1]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    x, y = label_metrics(probs, targets, torch.tensor([0.5, 0.75]), ["x", "y"], beta=2.0)
    # x: decided yes on images 0, 1, 3 (true on 0, 2, 3): tp 2, precision 2/3, recall 2/3; y: yes on 2 only
    assert (x.precision, x.recall, x.support, x.threshold) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3, 0.5)
    assert (y.precision, y.recall) == (1.0, pytest.approx(0.5))
    assert y.f_score == pytest.approx(5 * 1.0 * 0.5 / (4 * 1.0 + 0.5))


@pytest.fixture(scope="module")
def classified(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, int]]:
    """The job, with the served models it built and the validation images it read counted."""
    out = tmp_path_factory.mktemp("interpreted")
    counted: dict[str, int] = {"loads": 0, "valid_reads": 0}
    init, read = ImageClassifier.__init__, ImageFileDataset.__getitem__

    def load(self: ImageClassifier, *args: object, **kwargs: object) -> None:
        counted["loads"] += 1
        init(self, *args, **kwargs)

    def item(self: ImageFileDataset, i: int) -> object:
        counted["valid_reads"] += self.items[i][0].parent.parent.name == "valid"
        return read(self, i)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageClassifier, "__init__", load)
        patch.setattr(ImageFileDataset, "__getitem__", item)
        result = fine_tune(FineTuneConfig(**{**TINY, "epochs": 2, "precision": "fp32"}), tiny_dataset, out)
    return out, result, counted


def test_the_stored_model_is_loaded_once_and_validated_once_for_metrics_and_interpretation(
        classified: tuple[Path, Any, dict[str, int]]) -> None:
    """Each epoch validates the 8 images once; after saving, one served model and one more pass of them."""
    _, result, counted = classified
    assert counted == {"loads": 1, "valid_reads": 2 * 8 + 8}
    # the recorded loss is the mean of the interpretation's per-image losses: the same outputs
    losses = [t.loss for t in result.interpretation.top_losses]
    assert result.metrics["valid_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-6)


def test_a_classification_job_result_holds_the_served_models_interpretation(
        classified: tuple[Path, Any, dict[str, int]], tiny_dataset: Path) -> None:
    out, result, _ = classified
    found = result.interpretation
    served = ImageClassifier.load(out, device="cpu")
    files = sorted(p for p in (tiny_dataset / "valid").rglob("*") if p.is_file())
    probs = served.predict_proba([p.read_bytes() for p in files])
    actual = torch.tensor([served.classes.index(p.parent.name) for p in files])
    hand = torch.zeros(2, 2, dtype=torch.int64)
    for a, p in zip(actual.tolist(), probs.argmax(dim=1).tolist(), strict=True):
        hand[a, p] += 1
    assert found.task == "image_classification" and found.classes == served.classes and found.precision == "fp32"
    assert found.confusion == hand.tolist() and found.items == len(files) == 8
    assert sum(m.support for m in found.per_class) == 8
    # the same model at the same precision on the same images: the card's accuracy is the matrix's diagonal
    assert result.card["metrics"]["accuracy"] == pytest.approx(hand.trace().item() / 8)
    losses = [t.loss for t in found.top_losses]
    assert losses == sorted(losses, reverse=True) and len(found.top_losses) == 8
    by_file = {p.relative_to(tiny_dataset).as_posix(): i for i, p in enumerate(files)}
    for top in found.top_losses:
        i = by_file[top.item]  # a path relative to the data set's root
        assert top.actual == files[i].parent.name == served.classes[int(actual[i])]
        assert top.predicted == served.classes[int(probs[i].argmax())]
        assert top.probability == pytest.approx(float(probs[i, actual[i]]), abs=1e-5)
        assert top.loss == pytest.approx(-math.log(float(probs[i, actual[i]])), rel=1e-4, abs=1e-5)


def test_a_multi_label_job_reports_each_label_at_its_served_threshold(tmp_path: Path) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    rows = []
    for i in range(12):
        stripes(i % 2 == 0, i).save(tmp_path / "data" / "images" / f"{i}.png")
        rows.append(f"images/{i}.png,{'v' if i % 2 == 0 else 'h'}{' x' if i % 3 == 0 else ''},{i >= 8}")
    (tmp_path / "data" / "labels.csv").write_text("\n".join(["fname,labels,is_valid", *rows]) + "\n")
    cfg = FineTuneConfig(task="multi_label_classification", base=BaseWeights("none"), image_size=32, batch_size=4,
                         epochs=1, lr=5e-3, precision="fp32", fbeta_beta=2.0)
    found = fine_tune(cfg, tmp_path / "data", tmp_path / "model").interpretation
    served = MultiLabelClassifier.load(tmp_path / "model", device="cpu")
    answers = served.score_labels([(tmp_path / "data" / "images" / f"{i}.png").read_bytes() for i in range(8, 12)])
    truth = [set(r.split(",")[1].split()) for r in rows[8:]]
    assert found.confusion == [] and found.beta == 2.0 and found.items == 4
    for metrics in found.per_class:
        said = [metrics.name in a.predicted for a in answers]
        true = [metrics.name in t for t in truth]
        tp = sum(s and t for s, t in zip(said, true, strict=True))
        assert metrics.support == sum(true) and metrics.threshold == pytest.approx(
            float(served.thresholds[served.classes.index(metrics.name)]))
        assert metrics.precision == pytest.approx(tp / sum(said) if sum(said) else 0.0)
        assert metrics.recall == pytest.approx(tp / sum(true) if sum(true) else 0.0)


def test_a_segmentation_job_reports_the_iou_its_training_measured(tmp_path: Path) -> None:
    """Stored at the precision it trained at (fp32), on the same pixels: the engine's ConfusionMatrix (the
    card's iou:<class>) and the interpretation must agree."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "codes.txt").write_text("sky\nground\nVoid\n")
    rng = np.random.default_rng(0)
    for i in range(8):
        mask = np.zeros((24, 32), dtype=np.uint8)
        mask[8 + i:, :] = 1
        mask[-2:, :] = 2
        pixels = np.where(mask[..., None] == 0, (120, 190, 250), (90, 140, 40)) + rng.integers(0, 40, (24, 32, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(mask).save(root / "labels" / f"s{i}_P.png")
    (root / "valid.txt").write_text("s1.png\ns6.png\n")
    cfg = FineTuneConfig(task="segmentation", base=BaseWeights("none"), image_size=32, batch_size=3, epochs=3,
                         lr=1e-2, precision="fp32")
    result = fine_tune(cfg, root, tmp_path / "model")
    found, metrics = result.interpretation, result.card["metrics"]
    assert found.task == "segmentation" and found.classes == ["sky", "ground", "Void"] and found.items == 2
    counted = sum(map(sum, found.confusion))
    assert counted == sum(m.support for m in found.per_class) == 2 * 22 * 32  # void rows left out
    assert found.confusion[0][0] and found.confusion[1][1], "a model predicting one class would test little"
    for m in found.per_class[:2]:
        assert m.iou == pytest.approx(metrics[f"iou:{m.name}"], abs=1e-6)
    assert found.per_class[2].support == 0 and found.top_losses == []
