"""The SDK's plots render real PNGs from job results and events."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fineserve.v1 import training_pb2
from fineserve_client.plots import plot_lr_finder, plot_training

PNG = b"\x89PNG\r\n\x1a\n"


def test_lr_finder_plot_marks_suggestions(tmp_path: Path) -> None:
    lrs = [1e-7 * 1.3**i for i in range(60)]
    finder = training_pb2.LrFinderResult(
        points=[training_pb2.LrPoint(lr=lr, loss=2 - math.tanh(math.log10(lr) + 3)) for lr in lrs],
        suggestions={"valley": 1e-3, "steepest": 2e-3, "minimum_div_10": 1e-4})
    plot_lr_finder(finder, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="no points"):
        plot_lr_finder(training_pb2.LrFinderResult(), tmp_path / "empty.png")


def test_training_plot_from_events(tmp_path: Path) -> None:
    events = [training_pb2.JobEvent(batch=training_pb2.BatchProgress(
        phase="stage-0", epoch=1 + b // 10, epochs=2, batch=b % 10 + 1, batches=10, loss=1 / (b + 1),
        lr=1e-3 * (b + 1), momentum=0.95 - 0.005 * b, group_lrs=[1e-5, 1e-4, 1e-3])) for b in range(20)]
    events += [training_pb2.JobEvent(epoch=training_pb2.EpochMetrics(
        epoch=e, epochs=2, metrics={"train_loss": 0.5, "valid_loss": 0.4, "accuracy": 0.9})) for e in (1, 2)]
    plot_training(iter(events), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)
