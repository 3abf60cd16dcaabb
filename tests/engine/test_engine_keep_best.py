"""keep "best" | "last": the stored model is the best epoch's by the job's validation metric (through a resume),
or the last epoch's; the card says which epoch and by what."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from control.store import Store
from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_common.configs import Stage
from fineserve_common.errors import InvalidArgument
from fineserve_common.events import Checkpoint, Epoch, Event
from fineserve_common.spec import JobSpec
from service.job_requests import fine_tune_spec
from worker.engine import FineTuneConfig, fine_tune
from worker.engine.checkpoint import STATE_FILE, TENSORS_FILE
from worker.engine.early_stopping import kept_metric
from worker.engine.errors import Cancelled

from .synthetic_images import TINY

# A good epoch, then two at a rate that wrecks the model: the last epoch is worse than the first. Kept by the
# validation loss (the early-stopping metric, with a patience that never stops): a continuous metric, so epochs
# do not tie as accuracy can on 8 validation images.
JOB = {**TINY, "stages": (Stage(1, 0, lr=5e-3), Stage(1, 0, lr=1.0), Stage(1, 0, lr=1.0)),
       "early_stopping_metric": "valid_loss", "early_stopping_patience": 10}


class Recorder:
    """Each epoch's metrics, and its weights read from the checkpoint written after it."""

    def __init__(self) -> None:
        self.metrics: dict[int, dict[str, float]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Epoch):
            self.metrics[event.epoch] = event.metrics
        elif isinstance(event, Checkpoint):
            tensors = safetensors.torch.load_file(Path(event.path) / TENSORS_FILE)
            self.weights[event.epoch] = {k.removeprefix("model."): v for k, v in tensors.items()
                                         if k.startswith("model.")}


def stored(out: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(out / "model.safetensors")


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_best_epoch_is_stored_through_a_resume_and_last_keeps_the_last(tiny_dataset: Path,
                                                                          tmp_path: Path) -> None:
    seen = Recorder()
    out = tmp_path / "best"
    with pytest.raises(Cancelled):  # stopped after epoch 2: the checkpoint holds epoch 1's weights beside its own
        fine_tune(FineTuneConfig(**JOB), tiny_dataset, out, seen, should_stop=lambda: 2 in seen.weights)
    assert "best" in (out / "checkpoint" / STATE_FILE).read_text()
    result = fine_tune(FineTuneConfig(**JOB), tiny_dataset, out, seen)
    losses = {epoch: m["valid_loss"] for epoch, m in seen.metrics.items()}
    assert sorted(losses) == [1, 2, 3] and min(losses, key=losses.__getitem__) == 1, losses
    assert same(stored(out), seen.weights[1]) and not same(stored(out), seen.weights[3])
    assert result.card["kept"] == {"keep": "best", "epoch": 1, "metric": "valid_loss", "value": losses[1]}
    assert result.card["training_metrics"] == seen.metrics[1] and result.epochs_trained == 3

    last = Recorder()
    result = fine_tune(FineTuneConfig(**JOB, keep="last"), tiny_dataset, tmp_path / "last", last)
    assert same(stored(tmp_path / "last"), last.weights[3]) and not same(stored(tmp_path / "last"), last.weights[1])
    assert result.card["kept"]["epoch"] == 3 and result.card["training_metrics"] == last.metrics[3]


def test_the_metric_kept_by_is_the_one_the_job_optimises() -> None:
    assert kept_metric("", {"valid_loss": 1.0, "accuracy": 0.5, "train_loss": 1.0}) == "accuracy"
    assert kept_metric("", {"valid_loss": 1.0, "accuracy": 0.5, "fbeta": 0.4}) == "fbeta"
    assert kept_metric("", {"valid_loss": 1.0, "rmse": 1.0}) == "valid_loss"
    assert kept_metric("valid_loss", {"valid_loss": 1.0, "accuracy": 0.5}) == "valid_loss"


def test_the_door_takes_keep_best_or_last_and_refuses_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.db")
    store.put_dataset(datasets_pb2.Dataset(id="ds", name="i", layout=datasets_pb2.IMAGE_FOLDERS, tenant="default"),
                      str(tmp_path))

    def spec(**hyper: object) -> JobSpec:
        request = training_pb2.CreateFineTuneJobRequest(
            model_name="m", dataset_id="ds", task=training_pb2.IMAGE_CLASSIFICATION,
            base=training_pb2.BaseModel(random_init=True), hyperparameters=training_pb2.Hyperparameters(**hyper))
        return fine_tune_spec(request, store.for_tenant("default"), (tmp_path,), tmp_path / "out")

    assert spec().config.keep == "best" and spec(keep="last").config.keep == "last"
    with pytest.raises(InvalidArgument, match=r"hyperparameters\.keep must be one of best, last"):
        spec(keep="first")
