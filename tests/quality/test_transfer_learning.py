"""Transfer learning pays off on real photos: a body pretrained by fineserve on some classes of camvid_tiny
patches (Road/Building/Sky) makes a few-shot fine-tune (10 patches per class) on other classes
(Tree/Sidewalk/Car) far better than the same recipe from random weights, judged on patches of photos neither
run saw."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

from worker.engine import BaseWeights, FineTuneConfig, fine_tune

from .camvid_patches import write_transfer_datasets

pytestmark = pytest.mark.quality

PRETRAIN_CLASSES = ("Road", "Building", "Sky")
TARGET_CLASSES = ("Tree", "Sidewalk", "Car")
COMMON = {"image_size": 32, "lr": 5e-3, "lr_mult": 10.0, "device": "cpu"}
SEEDS = (0, 1, 2)
SHOTS = 10


def test_pretrained_body_beats_random_weights_on_new_classes(shared_data: Path, tmp_path: Path) -> None:
    @functools.cache
    def datasets(seed: int) -> tuple[Path, Path]:
        return write_transfer_datasets(shared_data / "camvid_tiny", tmp_path / f"data-{seed}", PRETRAIN_CLASSES,
                                       TARGET_CLASSES, test_photos=30, pretrain_per_class=400, shots=SHOTS,
                                       test_per_class=80, sample_seed=seed)

    pretrain_dir, _ = datasets(0)
    start = time.perf_counter()
    pretrained = fine_tune(FineTuneConfig(base=BaseWeights("none"), epochs=3, batch_size=32, **COMMON),
                           pretrain_dir, tmp_path / "pretrained")
    print(f"\npretraining on {PRETRAIN_CLASSES}: accuracy {pretrained.metrics['accuracy']:.3f} "
          f"in {time.perf_counter() - start:.0f}s")
    assert pretrained.metrics["accuracy"] >= 0.9, pretrained.metrics

    # The same 10 epochs of 1cycle each way; the pretrained body spends the first 2 with only the new head training.
    # Each seed draws other few-shot patches and initialises the head (and the random body) differently.
    gaps = []
    for seed in SEEDS:
        _, target_dir = datasets(seed)
        transfer = fine_tune(FineTuneConfig(base=BaseWeights("store", path=str(tmp_path / "pretrained")),
                                            freeze_epochs=2, epochs=8, batch_size=16, seed=seed, **COMMON),
                             target_dir, tmp_path / f"transfer-{seed}")
        scratch = fine_tune(FineTuneConfig(base=BaseWeights("none"), epochs=10, batch_size=16, seed=seed, **COMMON),
                            target_dir, tmp_path / f"scratch-{seed}")
        assert transfer.card["classes"] == sorted(TARGET_CLASSES)
        gaps.append(transfer.metrics["accuracy"] - scratch.metrics["accuracy"])
        print(f"seed {seed}: fine-tuned from the pretrained body {transfer.metrics['accuracy']:.3f}, "
              f"from random weights {scratch.metrics['accuracy']:.3f}")
    mean_gap = sum(gaps) / len(gaps)
    print(f"mean gap {100 * mean_gap:.1f} points over seeds {SEEDS}; total {time.perf_counter() - start:.0f}s")
    assert mean_gap >= 0.10, gaps
