"""Multi-label classification on real photos: a fine-tune on coco_tiny (labels.csv) must beat, in F2 on photos
neither the model nor its thresholds saw, the strongest image-blind predictors put through the same threshold
tuning: every label's training frequency as its score (so the best constant set of labels), and the model's own
scores shuffled across the photos (the right distribution of scores, blind to the image).

Cross-validated: FOLDS of 5 disjoint folds of 40 photos are held out in turn (the rest train); each fold's
photos are scored with thresholds tuned on the other folds' held-out scores, so no threshold saw the photos it
judges (tuned on the same 40 photos, image-blind scores reach the model's F2 in a quarter of draws)."""

from __future__ import annotations

import random
import shutil
import statistics
from pathlib import Path

import pytest
import torch

from worker.engine import BaseWeights, FineTuneConfig, MultiLabelClassifier, fine_tune
from worker.engine.vision.labels_csv import scan_labels_csv
from worker.engine.vision.multi_label import fbeta, tune_thresholds

pytestmark = pytest.mark.quality

# Random init (no ImageNet weights can reach this machine) on 160 photos: 64 px beat 96 px, 48 px and 32 px.
COCO = {
    "task": "multi_label_classification",
    "base": BaseWeights("none"),
    "image_size": 64,
    "batch_size": 16,
    "epochs": 8,
    "lr": 1e-2,
    "lr_mult": 10.0,
    "precision": "fp32",  # as measured (this machine has no bf16); bf16 would give other numbers
}
FOLDS = 3
# Measured (2-core CPU, fp32, the recipe above): F2 on held-out photos with thresholds from the other folds, model
# 0.624 0.548 0.547 (mean 0.573); label frequencies 0.598 0.547 0.633 (mean 0.593); the model's scores shuffled
# across photos mean 0.574, best of 20 draws 0.611. The model does not beat image-blind scores: its F2 of 0.66 on
# the photos its thresholds were tuned on (the old test's measure) came from the tuning. From random weights on
# 160 photos this recipe learns the labels' frequencies, not the photos; the bar stays, expected to fail (strict:
# a recipe that passes it must say so here) until a pretrained body or a better recipe reaches it.
MARGIN = 0.02
"""Required F2 gain over the better image-blind baseline, averaged over the folds (see the measured run)."""
SHUFFLES = 20


def write_fold(coco: Path, fold: int, out: Path) -> Path:
    """coco_tiny with an is_valid column holding out fold `fold` of 5 (a seeded shuffle of the 200 photos)."""
    rows = (coco / "labels.csv").read_text().splitlines()[1:]
    random.Random(0).shuffle(rows)
    held_out = set(rows[fold * len(rows) // 5:(fold + 1) * len(rows) // 5])
    shutil.copytree(coco / "train", out / "train")
    (out / "labels.csv").write_text("\n".join(["fname,labels,is_valid",
                                               *(f"{row},{row in held_out}" for row in rows)]) + "\n")
    return out


def cross_fitted_f2(scores: list[torch.Tensor], targets: list[torch.Tensor]) -> list[float]:
    """F2 of each fold's scores at thresholds tuned (for F2) on the other folds' scores and targets."""
    f2 = []
    for k in range(len(scores)):
        others = [i for i in range(len(scores)) if i != k]
        thresholds = tune_thresholds(torch.cat([scores[i] for i in others]), torch.cat([targets[i] for i in others]),
                                     2.0)
        f2.append(fbeta(scores[k], targets[k], thresholds, 2.0))
    return f2


@pytest.mark.xfail(strict=True, reason="measured: F2 0.573 against 0.593 for label frequencies (see above)")
def test_coco_tiny_f2_beats_image_blind_scores(shared_data: Path, tmp_path: Path) -> None:
    coco = shared_data / "coco_tiny"
    scores, targets, frequencies = [], [], []
    for fold in range(FOLDS):
        data_dir = write_fold(coco, fold, tmp_path / f"fold-{fold}")
        result = fine_tune(FineTuneConfig(**COCO), data_dir, tmp_path / f"model-{fold}")
        assert result.card["classes"] == ["book", "chair", "couch", "remote", "tv", "vase"]
        assert result.card["dataset"] == {"train_images": 160, "valid_images": 40, "skipped_files": 0}
        data = scan_labels_csv(data_dir, 0.2, 0)
        model = MultiLabelClassifier.load(tmp_path / f"model-{fold}", device="cpu")
        scores.append(model.predict_proba([path.read_bytes() for path, _ in data.valid]))
        targets.append(torch.stack([y for _, y in data.valid]))
        frequencies.append(torch.stack([y for _, y in data.train]).mean(dim=0).expand_as(targets[-1]))
        print(f"\nfold {fold}: F2 at 0.5 {result.card['training_metrics']['fbeta']:.4f}, tuned on its own photos "
              f"{result.metrics['fbeta']:.4f} (as served)", flush=True)
    check_f2(scores, targets, frequencies)


def check_f2(scores: list[torch.Tensor], targets: list[torch.Tensor], frequencies: list[torch.Tensor]) -> None:
    """The test's bar, apart so that it can be shown to fail on image-blind scores."""
    generator = torch.Generator().manual_seed(0)
    shuffled = [statistics.mean(cross_fitted_f2([s[torch.randperm(len(s), generator=generator)] for s in scores],
                                                targets)) for _ in range(SHUFFLES)]
    model = cross_fitted_f2(scores, targets)
    frequency = cross_fitted_f2(frequencies, targets)
    best_blind = max(statistics.mean(frequency), max(shuffled))
    summary = (f"F2 on held-out photos, thresholds from the other folds: model {statistics.mean(model):.4f} "
               f"(per fold {', '.join(f'{f:.3f}' for f in model)}); label frequencies {statistics.mean(frequency):.4f} "
               f"(per fold {', '.join(f'{f:.3f}' for f in frequency)}); the model's scores shuffled across photos "
               f"mean {statistics.mean(shuffled):.4f}, best of {SHUFFLES} {max(shuffled):.4f}")
    print(summary)
    assert statistics.mean(model) > best_blind + MARGIN, summary
