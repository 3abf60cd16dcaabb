"""auto_lr is worth using: on mnist_tiny (ResNet-18 from random weights, 32 px, 3 epochs, one rate for every
layer group), a job that trains at the LR range test's valley reaches nearly the accuracy of the same job at a
rate known to train well (3e-3), on average over SEEDS."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from worker.engine import BaseWeights, FineTuneConfig, fine_tune

pytestmark = pytest.mark.quality

JOB = {"base": BaseWeights("none"), "image_size": 32, "batch_size": 64, "freeze_epochs": 0, "epochs": 3,
       "lr_mult": 1.0, "precision": "fp32", "device": "cpu"}
GOOD_LR = 3e-3
SEEDS = (0, 1, 2)
SHARE = 0.97
"""auto_lr's mean accuracy must reach this share of the fixed good rate's. Measured (2-core CPU), seeds 0, 1, 2:
auto_lr chose 1.32e-3, 1.32e-3, 1.59e-3 and reached 0.9800, 0.9871, 0.9871 (mean 0.9847); lr 3e-3 reached 0.9928,
0.9814, 0.9843 (mean 0.9862): a share of 0.998. With batch augmentation (f519be9): valleys 1.1e-3, 5.2e-4, 6.3e-4,
auto_lr 0.9785, 0.9657, 0.9771 (mean 0.9738) against 0.9900, 0.9828, 0.9742 (mean 0.9824): 0.991. 3-8 minutes."""


def test_auto_lr_trains_nearly_as_well_as_a_good_fixed_rate(shared_data: Path, tmp_path: Path) -> None:
    accuracy: dict[str, list[float]] = {"auto_lr": [], f"lr {GOOD_LR:g}": []}
    for seed in SEEDS:
        auto = fine_tune(FineTuneConfig(**JOB, auto_lr=True, seed=seed), shared_data / "mnist_tiny",
                         tmp_path / f"auto-{seed}")
        fixed = fine_tune(FineTuneConfig(**JOB, lr=GOOD_LR, seed=seed), shared_data / "mnist_tiny",
                          tmp_path / f"fixed-{seed}")
        accuracy["auto_lr"].append(auto.metrics["accuracy"])
        accuracy[f"lr {GOOD_LR:g}"].append(fixed.metrics["accuracy"])
        print(f"\nseed {seed}: auto_lr chose {auto.chosen_lr:.3g} ({auto.lr_finder.suggestions}) and reached "
              f"{auto.metrics['accuracy']:.4f}; lr {GOOD_LR:g} reached {fixed.metrics['accuracy']:.4f}", flush=True)
    auto_mean, fixed_mean = statistics.mean(accuracy["auto_lr"]), statistics.mean(accuracy[f"lr {GOOD_LR:g}"])
    summary = f"mean validation accuracy over seeds {SEEDS}: auto_lr {auto_mean:.4f}, lr {GOOD_LR:g} {fixed_mean:.4f}"
    print(summary)
    assert auto_mean >= SHARE * fixed_mean, summary
