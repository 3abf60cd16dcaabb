"""The metrics a fine-tune records are the stored model's measured as served: a job trained in bf16 records what
a fresh evaluation through the served-model loading path (fp32) measures on its validation set, and a
multi-label job records F-beta at the tuned thresholds ScoreLabels applies."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from fineserve_common.configs import TextConfig
from worker.engine import FineTuneConfig, Stage, fine_tune
from worker.engine.families import load_served_model
from worker.engine.served_models import prepare_for_serving
from worker.engine.vision.forward import forward_logits
from worker.engine.vision.multi_label import fbeta

from .synthetic_images import TINY, image_bytes, stripes, write_class

BF16 = {**TINY, "precision": "bf16", "device": "cpu", "seed": 3}


def _served(model_dir: Path) -> Any:
    """The stored model as a replica holds it, loaded independently of the engine's own served pass."""
    return prepare_for_serving(load_served_model(model_dir, "cpu"), "fp32")


def test_a_bf16_trained_classifier_records_its_fp32_served_metrics(tmp_path: Path) -> None:
    for split, count in (("train", 8), ("valid", 6)):
        for name, vertical, seed in (("h", False, 0), ("v", True, 100)):
            write_class(tmp_path / "data" / split / name, vertical, count, seed + (50 if split == "valid" else 0))
    result = fine_tune(FineTuneConfig(**BF16), tmp_path / "data", tmp_path / "model")

    served = _served(tmp_path / "model")
    files = sorted((tmp_path / "data" / "valid").rglob("*.*"))
    batch = served.preprocess([f.read_bytes() for f in files])  # the served steps: decode, then forward passes
    logits = forward_logits(served.model, batch, served.device, served.precision, served.channels_last)
    labels = torch.tensor([served.classes.index(f.parent.name) for f in files])
    accuracy = float((served.activate(logits).argmax(dim=1) == labels).double().mean())
    loss = float(torch.nn.functional.cross_entropy(logits.double(), labels))

    assert result.metrics["accuracy"] == accuracy
    assert result.metrics["valid_loss"] == pytest.approx(loss, rel=1e-5, abs=1e-7)
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card == result.card and card["metrics"] == result.metrics
    assert card["metrics_measured"] == {"as": "served", "precision": "fp32"} and card["precision"] == "bf16"
    # the training-time (bf16) numbers are kept apart, and they are not what the served model scores
    assert card["training_metrics"]["train_loss"] == card["metrics"]["train_loss"]
    assert card["training_metrics"]["valid_loss"] != card["metrics"]["valid_loss"]


def test_multi_label_records_f_beta_at_the_served_thresholds(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(16):
        stripes(i % 2 == 0, i).save(root / "images" / f"{i}.png")
        rows.append(f"images/{i}.png,{'v' if i % 2 == 0 else 'h'}{' x' if i % 3 == 0 else ''},{i >= 10}")
    (root / "labels.csv").write_text("\n".join(["fname,labels,is_valid", *rows]) + "\n")
    cfg = FineTuneConfig(task="multi_label_classification", **{**BF16, "batch_size": 4, "precision": "fp32"})
    result = fine_tune(cfg, root, tmp_path / "model")

    served = _served(tmp_path / "model")
    valid = [i for i in range(16) if i >= 10]
    answers = served.score_labels([image_bytes(stripes(i % 2 == 0, i)) for i in valid])  # as ScoreLabels answers
    truth = [{"v" if i % 2 == 0 else "h", *(["x"] if i % 3 == 0 else [])} for i in valid]
    beta2 = cfg.fbeta_beta ** 2
    scores = []
    for answer, labels in zip(answers, truth, strict=True):
        hit = len(set(answer.predicted) & labels)
        p, r = hit / max(len(answer.predicted), 1), hit / len(labels)
        scores.append((1 + beta2) * p * r / (beta2 * p + r) if hit else 0.0)
    assert result.metrics["fbeta"] == pytest.approx(sum(scores) / len(scores), abs=1e-6)
    # the thresholds serving applies are not the job's 0.5, and F-beta there differs: what was measured is theirs
    probs = torch.tensor([[dict(a.scores)[c] for c in served.classes] for a in answers])
    targets = torch.tensor([[float(c in labels) for c in served.classes] for labels in truth])
    assert not math.isclose(fbeta(probs, targets, cfg.threshold, cfg.fbeta_beta), result.metrics["fbeta"])
    assert result.card["training_metrics"]["fbeta"] != result.metrics["fbeta"]


def test_a_bf16_trained_text_classifier_records_its_texts_read_one_by_one(reviews: Path, tmp_path: Path) -> None:
    cfg = TextConfig(task="text_classification", stages=(Stage(1, 0),), emb_size=8, hidden_size=12, n_layers=2,
                     max_vocab=200, min_freq=1, batch_size=8, max_len=30, device="cpu", precision="bf16", seed=5)
    result = fine_tune(cfg, reviews, tmp_path / "model")

    served = _served(tmp_path / "model")  # reads each text alone, unpadded, in fp32
    with open(reviews / "texts.csv", encoding="utf-8", newline="") as f:
        valid = [row for row in csv.DictReader(f) if row["is_valid"] == "True"]
    probs = served.predict_proba([row["text"] for row in valid])
    labels = torch.tensor([served.classes.index(row["label"]) for row in valid])
    assert result.metrics["accuracy"] == float((probs.argmax(dim=1) == labels).double().mean())
    assert result.metrics["valid_loss"] == pytest.approx(float(-probs[torch.arange(len(valid)), labels].log().mean()),
                                                         rel=1e-5)
    assert result.card["training_metrics"]["valid_loss"] != result.metrics["valid_loss"]
