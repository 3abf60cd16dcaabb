"""The LR range test: its curve and suggestions on real data, weight restoration, and auto_lr."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from fineserve_common.events import Batch, Event, Log
from worker.engine import BaseWeights, FineTuneConfig, find_lr, fine_tune, lr_range_test
from worker.engine.lr_finder import AUTO_LR_MIN_BATCHES, auto_lr_batches, auto_lr_pick, suggest_lrs
from worker.engine.train_loop import LoopSettings

from .synthetic_images import TINY


def test_range_test_on_mnist_tiny_trains_until_the_loss_rises(shared_data: Path) -> None:
    cfg = FineTuneConfig(base=BaseWeights("none"), image_size=24, batch_size=32)
    events: list[Event] = []
    result = find_lr(cfg, shared_data / "mnist_tiny", num_batches=80, on_event=events.append)
    points = result.points
    lrs, losses = [p[0] for p in points], [p[1] for p in points]
    # The rate grows by the same factor every batch, from 1e-7 to 10 over the 80 batches.
    assert lrs == pytest.approx([1e-7 * 1e8 ** (i / 79) for i in range(len(lrs))], rel=1e-6)
    batches = [e for e in events if isinstance(e, Batch)]
    assert len(batches) == len(points) and {e.phase for e in batches} == {"lr_find"}
    assert [e.lr for e in batches] == lrs and all(len(set(e.group_lrs)) == 1 for e in batches)
    lowest = min(range(len(losses)), key=losses.__getitem__)
    # The start of the curve: its first tenth, where the averaged loss still swings with single batches.
    start = sum(losses[:len(losses) // 10]) / (len(losses) // 10)
    print(f"minimum at {lrs[lowest]:.2e} (loss {losses[lowest]:.3f}), start loss {start:.3f}, last loss "
          f"{losses[-1]:.3f}, diverged {result.diverged}, {len(points)} points, {result.suggestions}")
    # Training under the growing rate lowers the loss well below where it started (a model that does not learn,
    # or a rate that never grows, stays at the start); past the minimum, too high a rate makes it rise again.
    assert losses[lowest] < 0.8 * start
    assert result.diverged or losses[-1] > 1.2 * losses[lowest]


def _curve(losses: list[float]) -> list[list[float]]:
    """[lr, loss] points for these losses at 10^-7, 10^-6.9, ... behind 9 points that suggest_lrs skips (the
    first tenth), so that kept point i is at 10^(-7 + i/10)."""
    return [[10 ** (-7.9 + 0.1 * i), loss] for i, loss in enumerate([9.0] * 9 + losses)]


def _kept_lr(i: int) -> float:
    return 10 ** (-7 + 0.1 * i)


def test_valley_on_a_steep_curve() -> None:
    # 81 kept points: falls fastest at 10^-3 (tanh's centre), lowest at 10^-1 (kept point 60), then blows up.
    losses = [1.5 - math.tanh(2 * (-4 + 0.1 * i)) + 5 * max(0.0, -6 + 0.1 * i) ** 2 for i in range(81)]
    assert min(range(81), key=losses.__getitem__) == 60
    found = suggest_lrs(_curve(losses))
    # The longest decreasing run is kept points 0..60 (61 points); fast.ai's window ends at its last point and is
    # as long: it starts at 60 - 61 = -1, and the answer is a third plus a sixth in, -1 + 20 + 10 = 29.
    assert found["valley"] == pytest.approx(_kept_lr(29), rel=1e-9)
    assert math.log10(found["steepest"]) == pytest.approx(-3, abs=0.1)
    assert found["minimum_div_10"] == pytest.approx(_kept_lr(60) / 10, rel=1e-9)


def test_valley_on_a_flat_noisy_curve_that_diverges() -> None:
    # Flat and noisy up to 10^-0.1 (kept points 0..69: a zigzag of 0.01 on a trend of -0.001 a point), then
    # diverging, as on hymenoptera's curve. Even points and odd points each fall; an odd point is above every
    # later even one, an even point above an odd one only 11 or more points later. So the longest decreasing
    # runs have 35 points (all evens 0..68, or odds then evens), and the first point that ends one is 68: the
    # window is 33..68, the answer 33 + 11 + 5 = 49 (10^-2.1). The run's own first point is 0 or 1, so "the
    # middle of the run" would answer 34 (10^-3.6), where the loss has not started to move.
    losses = [1.0 - 0.001 * i + 0.01 * (i % 2) for i in range(70)] + [1.0 + 0.5 * (i - 69) ** 2 for i in range(70, 81)]
    found = suggest_lrs(_curve(losses))
    assert found["valley"] == pytest.approx(_kept_lr(49), rel=1e-9)
    assert found["minimum_div_10"] == pytest.approx(_kept_lr(68) / 10, rel=1e-9)


def test_valley_on_a_descent_with_spikes() -> None:
    # A steady descent over kept points 0..60 with a spike of +0.5 at every point 2, 7, ..., 57 (12 spikes),
    # then a rise. A spike is above the points just before it, so the longest decreasing run leaves the spikes
    # out: 49 points, ending at 60. Window 11..60, answer 11 + 16 + 8 = 35.
    losses = [2.0 - 0.02 * i + (0.5 if i % 5 == 2 else 0.0) for i in range(61)] + [0.8 + 0.1 * i for i in range(1, 21)]
    found = suggest_lrs(_curve(losses))
    assert found["valley"] == pytest.approx(_kept_lr(35), rel=1e-9)
    assert found["minimum_div_10"] == pytest.approx(_kept_lr(60) / 10, rel=1e-9)
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


def test_auto_lr_on_a_random_body_trains_at_a_tenth_of_the_minimum(tiny_dataset: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    result = fine_tune(FineTuneConfig(**{**TINY, "auto_lr": True}), tiny_dataset, tmp_path, events.append)
    chosen = result.chosen_lr
    assert chosen == result.lr_finder.suggestions["minimum_div_10"]
    assert result.card["hyperparameters"]["lr"] == chosen and result.card["hyperparameters"]["auto_lr"]
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any(m.startswith("random-initialised body: no head-only stage, lr_mult 1") for m in logs)
    # The data set holds 3 batches an epoch: the range test runs the floor of 16 (not find_lr's 100).
    assert any("over up to 16 batches" in m for m in logs)
    phases = [e.phase for e in events if isinstance(e, Batch)]
    assert phases[0] == "lr_find" and phases[-1] == "stage-0" and phases.count("lr_find") <= AUTO_LR_MIN_BATCHES
    stage = [e for e in events if isinstance(e, Batch) and e.phase == "stage-0"]
    # A random body has no head-only stage before the unfrozen one, which so peaks at lr, not lr / 2, and one
    # rate for every layer group (lr_mult 1).
    assert max(e.lr for e in stage) == pytest.approx(chosen, rel=0.05)
    assert all(len(set(e.group_lrs)) == 1 for e in stage)


def test_auto_lr_range_size_and_pick() -> None:
    # at most an epoch's batches, at least 16, at most find_lr's 100
    assert [auto_lr_batches(n, 100) for n in (3, 16, 40, 500)] == [16, 16, 40, 100]
    assert auto_lr_pick(random_image_body=False) == "valley"


def test_the_range_test_stops_once_the_smoothed_loss_passes_4x_its_best() -> None:
    # One weight fitting y = 0 from w = 1: the loss w^2 falls while the rate is small; once AdamW's steps (about
    # lr each) overshoot zero by more than w started from, it grows, so the test must stop before its 60 batches.
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    nn.init.ones_(model.weight)
    batches = [(torch.ones(4, 1), torch.zeros(4, 1))]
    settings = LoopSettings(torch.device("cpu"), loss_fn=nn.MSELoss())
    result = lr_range_test(model, batches, settings=settings, start_lr=1e-4, end_lr=100.0, num_batches=60)
    smoothed = [loss for _, loss in result.points]
    assert result.diverged and len(smoothed) < 60
    assert smoothed[-1] > 4 * min(smoothed[:-1])  # the stopping point ...
    assert all(smoothed[i] <= 4 * min(smoothed[:i + 1]) for i in range(len(smoothed) - 1))  # ... and the first


def test_steepest_and_minimum_as_fast_ai_reads_them() -> None:
    # Kept points 0..80 (10^-7 .. 10^1): a zigzag of +-0.05 on a slow fall, one adjacent drop of 0.3 from point
    # 40 to 41 (the steepest pair: fast.ai answers its left point, 40; a difference across +-8 points would tie
    # over 33..48), and the lowest point at 79, in the curve's last twentieth (of 90 points: kept points 77..80),
    # which is left out as fast.ai leaves out its last 5: the lowest point left is 76.
    losses = [2.0 - 0.005 * i + 0.05 * (i % 2) - (0.3 if i > 40 else 0.0) for i in range(81)]
    losses[79] = 0.1
    assert min(range(77), key=losses.__getitem__) == 76
    found = suggest_lrs(_curve(losses))
    assert found["steepest"] == pytest.approx(_kept_lr(40), rel=1e-9)
    assert found["minimum_div_10"] == pytest.approx(_kept_lr(76) / 10, rel=1e-9)


def test_a_random_body_gets_one_rate_for_every_group_unless_asked() -> None:
    none = BaseWeights("none")
    assert FineTuneConfig(base=none).lr_spread == 1.0 and FineTuneConfig().lr_spread == 100.0
    assert FineTuneConfig(base=none, lr_mult=10.0).lr_spread == 10.0
    assert "lr_mult 1" in FineTuneConfig(base=none).applied_defaults() and FineTuneConfig().applied_defaults() == ""
    assert "lr_mult 1" not in FineTuneConfig(base=none, lr_mult=10.0).applied_defaults()
