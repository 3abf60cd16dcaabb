"""Checkpoints after every epoch, exact resume, and no pickle anywhere in the engine."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fineserve_common.events import Checkpoint, Epoch, Event, JobResult, Log
from worker.engine import Cancelled, FineTuneConfig, Stage, fine_tune
from worker.engine.checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    TrainingState,
    job_fingerprint,
    load_checkpoint,
    save_checkpoint,
)

from .synthetic_images import TINY

ENGINE = Path(__file__).resolve().parents[2] / "worker" / "engine"
# Two stages (so a resume may land on a stage boundary or inside a stage) and every RNG consumer switched on:
# dropout, augmentation, shuffling and mixup.
RESUMABLE = FineTuneConfig(**{**TINY, "seed": 3, "stages": (Stage(1, 2), Stage(2, 0)), "mixup_alpha": 0.4,
                              "label_smoothing": 0.1, "grad_clip": 1.0, "precision": "fp32", "device": "cpu"})


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(model_dir / "model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobResult]:
    out = tmp_path_factory.mktemp("uninterrupted")
    events: list[Event] = []
    result = fine_tune(RESUMABLE, tiny_dataset, out, events.append)
    assert [e.epoch for e in events if isinstance(e, Checkpoint)] == [1, 2, 3]
    return out, result


def stop_after_epoch(n: int, events: list[Event]) -> tuple[Callable[[Event], None], Callable[[], bool]]:
    """on_event and should_stop for a job to be cancelled as soon as epoch n's checkpoint is written."""
    def on_event(event: dict) -> None:
        events.append(event)

    def should_stop() -> bool:
        return any(isinstance(e, Checkpoint) and e.epoch == n for e in events)

    return on_event, should_stop


@pytest.mark.parametrize("stopped_after", [1, 2])
def test_interrupted_job_resumes_to_the_same_weights(stopped_after: int, tiny_dataset: Path, tmp_path: Path,
                                                     uninterrupted: tuple[Path, JobResult]) -> None:
    first: list[Event] = []
    with pytest.raises(Cancelled):
        fine_tune(RESUMABLE, tiny_dataset, tmp_path, *stop_after_epoch(stopped_after, first))
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_DIR]
    assert sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir()) == ["state.json", "state.safetensors"]
    checkpoint = [e for e in first if isinstance(e, Checkpoint)][-1]
    assert checkpoint == Checkpoint(stopped_after, str(tmp_path / CHECKPOINT_DIR))

    second: list[Event] = []
    result = fine_tune(RESUMABLE, tiny_dataset, tmp_path, second.append)
    assert any(isinstance(e, Log) and e.message == f"resumed from checkpoint after epoch {stopped_after}"
               for e in second)
    assert [(e.phase, e.epoch, e.epochs) for e in second if isinstance(e, Epoch)] == [
        ("stage-0", 1, 3), ("stage-1", 2, 3), ("stage-1", 3, 3)][stopped_after:]
    assert result.epochs_trained == result.card["epochs_trained"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json", "model.safetensors"]

    reference_dir, reference = uninterrupted
    expected, resumed = weights(reference_dir), weights(tmp_path)
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)  # bit-identical, fp32 on CPU
    assert result.metrics == reference.metrics


def test_a_checkpoint_of_another_job_is_ignored(tiny_dataset: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    with pytest.raises(Cancelled):
        fine_tune(RESUMABLE, tiny_dataset, tmp_path, *stop_after_epoch(1, events))
    other = dataclasses.replace(RESUMABLE, lr=1e-3)
    events = []
    fine_tune(other, tiny_dataset, tmp_path, events.append)
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any(m.startswith("ignoring the checkpoint in") and "another configuration" in m for m in logs)
    assert [e.epoch for e in events if isinstance(e, Epoch)] == [1, 2, 3]
    assert not (tmp_path / CHECKPOINT_DIR).exists()


def test_unreadable_checkpoint_is_ignored_and_a_half_swapped_one_is_found(tiny_dataset: Path,
                                                                        tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    state = TrainingState(0, 1, model.state_dict(), opt.state_dict(), {"last_epoch": 1}, {}, {}, [{"accuracy": 1.0}],
                          {"cpu": torch.get_rng_state()})
    cfg = FineTuneConfig(**TINY)
    fingerprint = job_fingerprint(cfg, ["a", "b"])
    save_checkpoint(tmp_path, state, fingerprint)
    save_checkpoint(tmp_path, state, fingerprint)  # replaces the first
    logs: list[str] = []
    loaded = load_checkpoint(tmp_path, fingerprint, logs.append)
    assert loaded is not None and loaded.epoch == 1 and loaded.history == [{"accuracy": 1.0}]
    assert torch.equal(loaded.rng["cpu"], state.rng["cpu"])
    restored = torch.optim.AdamW(model.parameters())
    restored.load_state_dict(loaded.optimizer)
    assert restored.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    assert all(torch.equal(restored.state_dict()["state"][0][k], opt.state_dict()["state"][0][k])
               for k in ("step", "exp_avg", "exp_avg_sq"))
    assert load_checkpoint(tmp_path, job_fingerprint(cfg, ["a", "c"]), logs.append) is None

    # A crash between the two renames of a save leaves only the previous checkpoint, under its old name.
    (tmp_path / CHECKPOINT_DIR).rename(tmp_path / ".checkpoint.old")
    assert load_checkpoint(tmp_path, fingerprint, logs.append) is not None

    (tmp_path / ".checkpoint.old" / STATE_FILE).write_text("{not json")
    assert load_checkpoint(tmp_path, fingerprint, logs.append) is None
    assert len(logs) == 2 and "another configuration" in logs[0] and "ignoring" in logs[1]


def test_checkpoint_metadata_is_plain_json(tiny_dataset: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    with pytest.raises(Cancelled):
        fine_tune(RESUMABLE, tiny_dataset, tmp_path, *stop_after_epoch(1, events))
    meta = json.loads((tmp_path / CHECKPOINT_DIR / STATE_FILE).read_text())
    assert (meta["stage"], meta["epoch"], len(meta["history"])) == (0, 1, 1)
    assert meta["scheduler"]["last_epoch"] == 3 and meta["optimizer"]["param_groups"][0]["betas"][1] == 0.99
    tensors = safetensors.torch.load_file(tmp_path / CHECKPOINT_DIR / "state.safetensors")
    assert tensors["rng.cpu"].dtype == torch.uint8
    assert any(k.startswith("optimizer.") and k.endswith(".exp_avg") for k in tensors)


def test_no_pickle_in_the_engine() -> None:
    for path in ENGINE.rglob("*.py"):  # the family folders too
        source = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", source, re.MULTILINE), path
        for call in re.findall(r"torch\.load\([^)]*\)", source):
            assert "weights_only=True" in call, (path, call)
