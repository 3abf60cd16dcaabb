"""Text jobs checkpoint after every epoch (checkpoint.py, as image jobs) and a rerun resumes to the same weights;
early stopping works as in image jobs, across a resume too."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fineserve_common.configs import TextConfig
from fineserve_common.events import Epoch, Event, Log
from worker.engine import Cancelled, Stage, fine_tune
from worker.engine.checkpoint import CHECKPOINT_DIR

from .test_engine_checkpoint import stop_after_epoch

SIZE = {"emb_size": 8, "hidden_size": 12, "n_layers": 2, "max_vocab": 200, "min_freq": 1, "batch_size": 8,
        "bptt": 10, "max_len": 30, "device": "cpu", "precision": "fp32", "seed": 5}
# Two stages each, so a resume may land on a stage boundary or inside a stage; every dropout is on.
JOBS = {
    "language_model": (TextConfig(task="language_model", stages=(Stage(1, 2), Stage(2, 0)), **SIZE),
                       fine_tune),
    "text_classification": (TextConfig(task="text_classification", stages=(Stage(1, 3), Stage(2, 0)), **SIZE),
                            fine_tune),
}


@pytest.mark.parametrize("task", sorted(JOBS))
def test_interrupted_text_job_resumes_to_the_same_weights(task: str, reviews: Path, tmp_path: Path) -> None:
    cfg, run = JOBS[task]
    reference = run(cfg, reviews, tmp_path / "uninterrupted")
    for stopped_after in (1, 2):
        out = tmp_path / f"stopped-{stopped_after}"
        first: list[Event] = []
        with pytest.raises(Cancelled):
            run(cfg, reviews, out, *stop_after_epoch(stopped_after, first))
        assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT_DIR]

        second: list[Event] = []
        result = run(cfg, reviews, out, second.append)
        assert any(isinstance(e, Log) and e.message == f"resumed from checkpoint after epoch {stopped_after}"
                   for e in second)
        assert [e.epoch for e in second if isinstance(e, Epoch)] == [2, 3][stopped_after - 1:]
        assert result.epochs_trained == 3
        assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.safetensors"]
        expected = safetensors.torch.load_file(tmp_path / "uninterrupted" / "model.safetensors")
        resumed = safetensors.torch.load_file(out / "model.safetensors")
        assert expected.keys() == resumed.keys()
        assert all(torch.equal(expected[k], resumed[k]) for k in expected)  # bit-identical, fp32 on CPU
        assert result.metrics == reference.metrics


def test_a_text_checkpoint_of_another_configuration_is_ignored(reviews: Path, tmp_path: Path) -> None:
    cfg, run = JOBS["language_model"]
    with pytest.raises(Cancelled):
        run(cfg, reviews, tmp_path, *stop_after_epoch(1, []))
    events: list[Event] = []
    run(dataclasses.replace(cfg, lr=1e-3), reviews, tmp_path, events.append)
    assert any(isinstance(e, Log) and e.message.startswith("ignoring the checkpoint in") for e in events)
    assert [e.epoch for e in events if isinstance(e, Epoch)] == [1, 2, 3]
    assert not (tmp_path / CHECKPOINT_DIR).exists()


def test_text_job_stops_early_also_after_a_resume(reviews: Path, tmp_path: Path) -> None:
    cfg, run = JOBS["text_classification"]
    # No epoch can improve accuracy by more than 1: the first sets the best, the second ends training.
    stopping = dataclasses.replace(cfg, early_stopping_metric="accuracy", early_stopping_patience=1,
                                   early_stopping_min_delta=1.0)
    events: list[Event] = []
    result = run(stopping, reviews, tmp_path / "stopped", events.append)
    assert result.epochs_trained == result.card["epochs_trained"] == 2
    assert any(isinstance(e, Log) and e.message.startswith("early stopping after epoch 2") for e in events)

    # Resumed after epoch 1, the job still knows epoch 1's best (a fresh count would run to epoch 3).
    with pytest.raises(Cancelled):
        run(stopping, reviews, tmp_path / "resumed", *stop_after_epoch(1, []))
    resumed: list[Event] = []
    assert run(stopping, reviews, tmp_path / "resumed", resumed.append).epochs_trained == 2
    assert [e.epoch for e in resumed if isinstance(e, Epoch)] == [2]
