"""The LR range test for text jobs: on the model and batches the fine-tune would start from, at its first stage's
freeze depth, repeatable for a seed; and auto_lr, which trains at its valley, also after a resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fineserve_common.configs import TextConfig
from fineserve_common.events import Batch, Event, Log
from worker.engine import Cancelled, find_lr
from worker.engine.lr_finder import AUTO_LR_RANGE

from .test_engine_checkpoint import stop_after_epoch
from .test_engine_text_checkpoint import JOBS, SIZE


@pytest.mark.parametrize(("task", "first_freeze"), [("language_model", 2), ("text_classification", 3)])
def test_text_range_test_follows_the_job(task: str, first_freeze: int, reviews: Path) -> None:
    cfg = JOBS[task][0]  # two stages, the first frozen to first_freeze
    events: list[Event] = []
    result = find_lr(cfg, reviews, num_batches=15, on_event=events.append)
    lrs = [lr for lr, _ in result.points]
    assert 2 <= len(lrs) <= 15 and lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-7)
    assert {"valley", "steepest", "minimum_div_10"} <= set(result.suggestions)
    assert {e.phase for e in events if isinstance(e, Batch)} == {"lr_find"}
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any(f"freeze_to {first_freeze}" in message for message in logs)  # the first stage's depth
    assert find_lr(cfg, reviews, num_batches=15).points == result.points  # the seed's, every time


def test_a_freeze_depth_the_model_does_not_have_is_refused(reviews: Path) -> None:
    cfg = TextConfig(task="text_classification", **SIZE)  # 2 LSTMs: embedding, 2 LSTMs, head
    with pytest.raises(ValueError, match=r"4 layer groups, so it must be in \[0, 3\]"):
        find_lr(cfg, reviews, num_batches=5, freeze_to=4)


@pytest.mark.parametrize("task", sorted(JOBS))
def test_auto_lr_trains_at_the_valley_and_a_resumed_job_keeps_it(task: str, reviews: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(AUTO_LR_RANGE, "num_batches", 20)  # the plumbing is under test, not the curve
    cfg, run = JOBS[task]
    cfg = dataclasses.replace(cfg, auto_lr=True)
    events: list[Event] = []
    result = run(cfg, reviews, tmp_path / "whole", events.append)
    valley = result.lr_finder.suggestions["valley"]
    assert result.chosen_lr == valley == result.card["hyperparameters"]["lr"]
    assert sum(isinstance(e, Batch) and e.phase == "lr_find" for e in events) >= 2
    logs = [e.message for e in events if isinstance(e, Log)]
    assert f"auto_lr: lr {valley:.3g}, the range test's valley suggestion" in logs

    out = tmp_path / "stopped"
    with pytest.raises(Cancelled):
        run(cfg, reviews, out, *stop_after_epoch(1, []))
    second: list[Event] = []
    resumed = run(cfg, reviews, out, second.append)
    assert not any(isinstance(e, Batch) and e.phase == "lr_find" for e in second)  # the checkpoint's choice
    assert resumed.lr_finder == result.lr_finder and resumed.chosen_lr == valley
    whole = safetensors.torch.load_file(tmp_path / "whole" / "model.safetensors")
    again = safetensors.torch.load_file(out / "model.safetensors")
    assert all(torch.equal(whole[k], again[k]) for k in whole)  # as the uninterrupted job, fp32 on CPU
