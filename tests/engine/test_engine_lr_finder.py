"""The LR range test: its curve and suggestions on real data, weight restoration, and auto_lr."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from fineserve_common.events import Batch, Event, Log
from worker.engine import BaseWeights, FineTuneConfig, find_lr, fine_tune, lr_range_test, runner
from worker.engine.lr_finder import suggest_lrs

from .synthetic_images import TINY


def test_range_test_on_mnist_tiny_suggests_a_rate_on_the_descent(shared_data: Path) -> None:
    cfg = FineTuneConfig(base=BaseWeights("none"), image_size=24, batch_size=32)
    events: list[Event] = []
    result = find_lr(cfg, shared_data / "mnist_tiny", num_batches=80, on_event=events.append)
    points = result.points
    lrs, losses = [p[0] for p in points], [p[1] for p in points]
    assert lrs[0] == pytest.approx(1e-7) and all(a < b for a, b in itertools.pairwise(lrs))
    batches = [e for e in events if isinstance(e, Batch)]
    assert len(batches) == len(points) and {e.phase for e in batches} == {"lr_find"}
    assert [e.lr for e in batches] == lrs and all(len(set(e.group_lrs)) == 1 for e in batches)
    lowest = min(range(len(losses)), key=losses.__getitem__)
    # The start of the curve: its first tenth, where the averaged loss still swings with single batches.
    start = sum(losses[:len(losses) // 10]) / (len(losses) // 10)
    valley = result.suggestions["valley"]
    at_valley = losses[lrs.index(valley)]
    print(f"valley {valley:.2e} (loss {at_valley:.3f}), minimum at {lrs[lowest]:.2e} (loss {losses[lowest]:.3f}), "
          f"start loss {start:.3f}, diverged {result.diverged}, {len(points)} points")
    assert at_valley < start and valley < lrs[lowest]
    assert result.suggestions["minimum_div_10"] == pytest.approx(lrs[lowest] / 10)
    assert losses[lrs.index(result.suggestions["steepest"])] < start


def test_suggestions_on_a_known_curve() -> None:
    logs = [-7 + 0.1 * i for i in range(81)]  # 1e-7 .. 10
    # falls fastest at 10^-3 (tanh's centre), lowest near 10^-1, then blows up
    losses = [1.5 - math.tanh(2 * (x + 3)) + 5 * max(0.0, x + 1) ** 2 for x in logs]
    points = [[10**x, loss] for x, loss in zip(logs, losses, strict=True)]
    found = suggest_lrs(points)
    assert math.log10(found["steepest"]) == pytest.approx(-3, abs=0.06)
    lowest = min(range(81), key=losses.__getitem__)
    assert found["minimum_div_10"] == pytest.approx(points[lowest][0] / 10)
    # valley: middle of the fall from the first kept point (the first tenth is skipped) to the minimum
    assert math.log10(found["valley"]) == pytest.approx((logs[8] + logs[lowest]) / 2, abs=0.06)
    assert suggest_lrs([[1e-3, 1.0]]) == {"valley": 1e-3, "steepest": 1e-3, "minimum_div_10": 1e-4}


def test_lr_range_test_restores_weights_buffers_mode_and_rng() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(4, 2)).eval()
    batches = [(torch.randn(4, 3, 6, 6), torch.randint(0, 2, (4,))) for _ in range(3)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = lr_range_test(model, batches, start_lr=1e-4, end_lr=1.0, num_batches=10)
    assert len(result.points) == 10 or result.diverged  # cycled through the 3 batches
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


def test_range_arguments_are_checked_before_any_work(tmp_path: Path) -> None:
    for kwargs in ({"start_lr": 1.0, "end_lr": 0.1}, {"num_batches": 1}, {"freeze_to": 3}):
        with pytest.raises(ValueError):
            find_lr(FineTuneConfig(**TINY), tmp_path / "missing", **kwargs)


def test_find_lr_starts_from_the_first_stage(tiny_dataset: Path, seeded_torch_home: dict) -> None:
    events: list[Event] = []
    result = find_lr(FineTuneConfig(**{**TINY, "base": BaseWeights("torchvision")}), tiny_dataset, num_batches=5,
                     on_event=events.append)
    assert any("freeze_to 2, image size 32" in e.message for e in events if isinstance(e, Log))
    assert len(result.points) <= 5 and set(result.suggestions) == {"valley", "steepest", "minimum_div_10"}


def test_auto_lr_trains_with_the_valley_suggestion(tiny_dataset: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.AUTO_LR_RANGE, "num_batches", 30)  # the plumbing is under test, not the curve
    events: list[Event] = []
    result = fine_tune(FineTuneConfig(**{**TINY, "auto_lr": True}), tiny_dataset, tmp_path, events.append)
    chosen = result.chosen_lr
    assert chosen == result.lr_finder.suggestions["valley"]
    assert result.card["hyperparameters"]["lr"] == chosen and result.card["hyperparameters"]["auto_lr"]
    phases = [e.phase for e in events if isinstance(e, Batch)]
    assert phases[0] == "lr_find" and phases[-1] == "stage-0" and phases.count("lr_find") <= 30
    head_peak = max(e.lr for e in events if isinstance(e, Batch) and e.phase == "stage-0")
    assert head_peak == pytest.approx(chosen / 2, rel=0.05)  # the unfrozen stage peaks at lr / 2
