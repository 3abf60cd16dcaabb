"""auto_lr is worth using: on mnist_tiny (ResNet-18 from random weights, 32 px, 3 epochs, the defaults for a
random body), a job that trains at the rate auto_lr picks reaches at least SHARE of the accuracy of the same job
at the best of the fixed rates in GRID, on average over SEEDS (the bar of issue 25; benchmarks/auto_lr_grid.py
runs the same comparison through gRPC on three data sets)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from worker.engine import BaseWeights, FineTuneConfig, fine_tune

pytestmark = pytest.mark.quality

JOB = {"base": BaseWeights("none"), "image_size": 32, "batch_size": 64, "epochs": 3, "precision": "fp32",
       "device": "cpu"}
GRID = (1e-3, 3e-3, 1e-2)
SEEDS = (0, 1, 2)
SHARE = 0.98
"""auto_lr's mean accuracy must reach this share of the mean, over the seeds, of the best fixed rate's (issue 25's
bar). Measured (2-core CPU, fp32): auto_lr chose 2.15e-3 (minimum_div_10) on each seed and reached 0.9785, 0.9814,
0.9943 (mean 0.9847); the best of the grid 0.9800 (1e-3), 0.9886 (3e-3), 0.9886 (1e-3, 1e-2) (mean 0.9857): a share
of 0.999. At the valley (4.6e-5 on seed 0) the same job reached 0.877. 4-5 minutes."""


def test_auto_lr_reaches_the_best_fixed_rate(shared_data: Path, tmp_path: Path) -> None:
    auto: list[float] = []
    best: list[float] = []
    for seed in SEEDS:
        result = fine_tune(FineTuneConfig(**JOB, auto_lr=True, seed=seed), shared_data / "mnist_tiny",
                           tmp_path / f"auto-{seed}")
        fixed = {lr: fine_tune(FineTuneConfig(**JOB, lr=lr, seed=seed), shared_data / "mnist_tiny",
                               tmp_path / f"{lr:g}-{seed}").metrics["accuracy"] for lr in GRID}
        auto.append(result.metrics["accuracy"])
        best.append(max(fixed.values()))
        print(f"\nseed {seed}: auto_lr chose {result.chosen_lr:.3g} ({result.lr_finder.suggestions}) and reached "
              f"{auto[-1]:.4f}; " + ", ".join(f"lr {lr:g} {a:.4f}" for lr, a in fixed.items()), flush=True)
    summary = (f"mean validation accuracy over seeds {SEEDS}: auto_lr {statistics.mean(auto):.4f}, best fixed rate "
               f"{statistics.mean(best):.4f}")
    print(summary)
    assert statistics.mean(auto) >= SHARE * statistics.mean(best), summary
