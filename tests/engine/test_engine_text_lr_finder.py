"""The LR range test for text jobs: on the model and batches the fine-tune would start from, at its first stage's
freeze depth, repeatable for a seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.engine.text_config import TextConfig
from worker.engine.text_training import find_text_lr

from .test_engine_text_checkpoint import JOBS, SIZE


@pytest.mark.parametrize(("task", "first_freeze"), [("language_model", 2), ("text_classification", 3)])
def test_text_range_test_follows_the_job(task: str, first_freeze: int, reviews: Path) -> None:
    cfg = JOBS[task][0]  # two stages, the first frozen to first_freeze
    events: list[dict] = []
    result = find_text_lr(cfg, reviews, num_batches=15, on_event=events.append)
    lrs = [lr for lr, _ in result["points"]]
    assert 2 <= len(lrs) <= 15 and lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-7)
    assert {"valley", "steepest", "minimum_div_10"} <= set(result["suggestions"])
    assert {e["phase"] for e in events if e["type"] == "batch"} == {"lr_find"}
    assert any(f"freeze_to {first_freeze}" in e.get("message", "") for e in events)  # the first stage's depth
    assert find_text_lr(cfg, reviews, num_batches=15)["points"] == result["points"]  # the seed's, every time


def test_a_freeze_depth_the_model_does_not_have_is_refused(reviews: Path) -> None:
    cfg = TextConfig(task="text_classification", **SIZE)  # 2 LSTMs: embedding, 2 LSTMs, head
    with pytest.raises(ValueError, match=r"4 layer groups, so it must be in \[0, 3\]"):
        find_text_lr(cfg, reviews, num_batches=5, freeze_to=4)
