"""The schedule a run actually applies: 1cycle shape, per-group rates, freezing, progressive resizing."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fineserve_common.events import Batch, Checkpoint, Epoch, Event
from worker.engine import BaseWeights, FineTuneConfig, ImageClassifier, Stage, fine_tune, runner
from worker.engine.checkpoint import TENSORS_FILE
from worker.engine.schedule import even_mults, one_cycle

from .synthetic_images import TINY

# 24 training images in batches of 3: 8 steps per epoch, so pct_start 0.25 puts a 1cycle's peak on a step.
STEPS = {**TINY, "batch_size": 3, "pct_start": 0.25}


def batches_of(events: list[Event], phase: str) -> list[Event]:
    return [e for e in events if isinstance(e, Batch) and e.phase == phase]


def checkpoint_snapshots(events: list[Event]) -> tuple[dict[int, dict[str, torch.Tensor]], Callable[[Event], None]]:
    """The model after each epoch, read from the checkpoint the moment it was announced."""
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_event(event: dict) -> None:
        events.append(event)
        if isinstance(event, Checkpoint):
            tensors = safetensors.torch.load_file(Path(event.path) / TENSORS_FILE)
            snapshots[event.epoch] = {k.removeprefix("model."): v for k, v in tensors.items()
                                         if k.startswith("model.")}

    return snapshots, on_event


def test_lr_and_momentum_follow_the_1cycle_shape(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = FineTuneConfig(**{**STEPS, "stages": (Stage(2, 0, lr=1e-2),), "group_lrs": (), "div_factor": 10.0,
                            "final_div_factor": 100.0, "moms_max": 0.9, "moms_min": 0.8})
    events: list[Event] = []
    fine_tune(cfg, tiny_dataset, tmp_path, events.append)
    batches = batches_of(events, "stage-0")
    lrs, moms = [e.lr for e in batches], [e.momentum for e in batches]
    assert len(lrs) == 16 and [e.epoch for e in batches] == [1] * 8 + [2] * 8
    peak = 16 // 4 - 1  # warm-up ends at step pct_start * total_steps - 1
    assert max(range(16), key=lrs.__getitem__) == peak and lrs[peak] == pytest.approx(1e-2)
    assert min(range(16), key=moms.__getitem__) == peak and moms[peak] == pytest.approx(0.8)
    assert lrs[0] == pytest.approx(1e-2 / 10) and moms[0] == pytest.approx(0.9)
    assert lrs[-1] == pytest.approx(1e-2 / (10 * 100)) and moms[-1] == pytest.approx(0.9)
    assert all(a < b for a, b in itertools.pairwise(lrs[:peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(lrs[peak:]))
    assert all(a > b for a, b in itertools.pairwise(moms[:peak + 1]))
    assert all(e.group_lrs[-1] == e.lr for e in batches)


def peak_group_lrs(batches: list[Event]) -> list[float]:
    return [max(e.group_lrs[g] for e in batches) for g in range(3)]


def test_discriminative_rates_are_the_requested_ones(tiny_dataset: Path, tmp_path: Path) -> None:
    spread = FineTuneConfig(**{**STEPS, "lr_mult": 16.0, "stages": (Stage(1, 1, lr=4e-3), Stage(1, 0, lr=8e-3))})
    events: list[Event] = []
    result = fine_tune(spread, tiny_dataset, tmp_path / "spread", events.append)
    # Trainable groups follow the geometric spread; the frozen group's BatchNorm trains at the head's rate.
    assert peak_group_lrs(batches_of(events, "stage-0")) == pytest.approx([4e-3, 1e-3, 4e-3])
    assert peak_group_lrs(batches_of(events, "stage-1")) == pytest.approx([5e-4, 2e-3, 8e-3])
    assert even_mults(5e-4, 8e-3, 3) == pytest.approx([5e-4, 2e-3, 8e-3])
    assert [s["lr"] for s in result.card["stages"]] == [4e-3, 8e-3]

    explicit = FineTuneConfig(**{**STEPS, "lr": 4e-3, "group_lrs": (1e-5, 3e-4, 6e-3),
                                 "stages": (Stage(1, 2), Stage(1, 0))})
    events = []
    result = fine_tune(explicit, tiny_dataset, tmp_path / "explicit", events.append)
    assert peak_group_lrs(batches_of(events, "stage-0")) == pytest.approx([4e-3, 4e-3, 4e-3])
    assert peak_group_lrs(batches_of(events, "stage-1")) == pytest.approx([1e-5, 3e-4, 6e-3])
    assert [s["lr"] for s in result.card["stages"]] == [4e-3, 6e-3]


def test_gradual_unfreezing_moves_only_unfrozen_groups(tiny_dataset: Path, tmp_path: Path,
                                                      seeded_torch_home: dict[str, torch.Tensor]) -> None:
    cfg = FineTuneConfig(**{**TINY, "base": BaseWeights("torchvision"), "stages": (Stage(1, 2), Stage(1, 1),
                                                                                      Stage(1, 0))})
    events: list[Event] = []
    after, on_event = checkpoint_snapshots(events)
    fine_tune(cfg, tiny_dataset, tmp_path, on_event)
    initial = {"body." + k: v for k, v in seeded_torch_home.items()}
    early_conv, late_conv, early_bn = "body.layer1.0.conv1.weight", "body.layer4.1.conv2.weight", "body.bn1.weight"
    # freeze_to 2: only the head (and BatchNorm everywhere) trains
    assert torch.equal(after[1][early_conv], initial[early_conv])
    assert torch.equal(after[1][late_conv], initial[late_conv])
    assert not torch.equal(after[1][early_bn], initial[early_bn])
    # freeze_to 1: layer3/layer4 join in
    assert torch.equal(after[2][early_conv], initial[early_conv])
    assert not torch.equal(after[2][late_conv], after[1][late_conv])
    # freeze_to 0: everything trains
    assert not torch.equal(after[3][early_conv], initial[early_conv])
    assert [e.phase for e in events if isinstance(e, Epoch)] == ["stage-0", "stage-1", "stage-2"]


def test_progressive_resizing_continues_the_same_weights(tiny_dataset: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    entered: list[tuple[int, dict[str, torch.Tensor]]] = []
    real_train_epoch = runner.train_epoch

    def spy(model: torch.nn.Module, batches: torch.utils.data.DataLoader, *args: object, **kwargs: object) -> float:
        entered.append((next(iter(batches))[0].shape[-1], {k: v.clone() for k, v in model.state_dict().items()}))
        return real_train_epoch(model, batches, *args, **kwargs)

    monkeypatch.setattr(runner, "train_epoch", spy)
    cfg = FineTuneConfig(**{**TINY, "stages": (Stage(1, 0), Stage(1, 0, image_size=48))})
    events: list[Event] = []
    after, on_event = checkpoint_snapshots(events)
    result = fine_tune(cfg, tiny_dataset, tmp_path, on_event)
    assert [size for size, _ in entered] == [32, 48]
    assert entered[1][1].keys() == after[1].keys()
    assert all(torch.equal(entered[1][1][k], after[1][k]) for k in after[1])
    assert result.card["image_size"] == 48 and result.card["hyperparameters"]["image_size"] == 32
    assert ImageClassifier.load(tmp_path).transform.transforms[1].size == (48, 48)


def test_one_cycle_survives_a_warm_up_of_exactly_one_step() -> None:
    """torch's OneCycleLR divides by zero when pct_start * total_steps == 1; e.g. 4 batches at pct_start 0.25."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    sched = one_cycle(opt, FineTuneConfig(pct_start=0.25), [1e-2], total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-2) and lrs[1] < lrs[0]  # warm-up ends at step pct_start * 4 - 1 = 0
    assert lrs[-1] == pytest.approx(1e-2 / 25 / 1e5)
