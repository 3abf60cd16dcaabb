"""CreateFineTuneJob requests for LANGUAGE_MODEL and TEXT_CLASSIFICATION: the job spec the front door builds,
and what it refuses before anything is queued (no Ray, no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.store import Store, TenantStore
from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_common.configs import BaseWeights, TextConfig
from fineserve_common.errors import FineserveError
from fineserve_common.spec import FIND_LR, FINE_TUNE, JobSpec, LrRange
from service.job_requests import find_lr_spec, fine_tune_spec

Req = training_pb2.CreateFineTuneJobRequest


@pytest.fixture
def store(tmp_path: Path) -> TenantStore:
    s = Store(tmp_path / "f.db")
    s.put_dataset(datasets_pb2.Dataset(id="ds-text", name="t", layout=datasets_pb2.TEXT_CSV, tenant="default",
                                       summary=datasets_pb2.DatasetSummary(classes=["neg", "pos"])), str(tmp_path))
    s.put_dataset(datasets_pb2.Dataset(id="ds-img", name="i", layout=datasets_pb2.IMAGE_FOLDERS, tenant="default"),
                  str(tmp_path))
    return s.for_tenant("default")


def _spec(store: TenantStore, tmp_path: Path, **fields: object) -> JobSpec:
    return fine_tune_spec(Req(**{"model_name": "m", "dataset_id": "ds-text", **fields}), store, (tmp_path,),
                          tmp_path / "out")


def test_language_model_spec(store: TenantStore, tmp_path: Path) -> None:
    spec = _spec(store, tmp_path, task=training_pb2.LANGUAGE_MODEL, base=training_pb2.BaseModel(random_init=True),
                 hyperparameters=training_pb2.Hyperparameters(epochs=2, lr=3e-3),
                 text=training_pb2.TextOptions(emb_size=16, n_layers=2, bptt=20))
    assert (spec.kind, spec.task, spec.out_dir) == (FINE_TUNE, "language_model", str(tmp_path / "out"))
    cfg = spec.config
    assert isinstance(cfg, TextConfig) and cfg.task == "language_model"
    assert cfg.base == BaseWeights("none") and cfg.epochs == 2 and cfg.lr == 3e-3
    assert (cfg.emb_size, cfg.n_layers, cfg.bptt) == (16, 2, 20) and cfg.hidden_size == TextConfig().hidden_size
    assert cfg.early_stopping_metric == ""
    assert JobSpec.from_json(spec.to_json()) == spec


def test_text_jobs_take_early_stopping_as_image_jobs_do(store: TenantStore, tmp_path: Path) -> None:
    spec = _spec(store, tmp_path, task=training_pb2.LANGUAGE_MODEL, base=training_pb2.BaseModel(random_init=True),
                 hyperparameters=training_pb2.Hyperparameters(
                     early_stopping=training_pb2.EarlyStopping(metric="valid_loss", patience=2, min_delta=0.01)))
    cfg = spec.config
    assert (cfg.early_stopping_metric, cfg.early_stopping_patience, cfg.early_stopping_min_delta) == (
        "valid_loss", 2, 0.01)
    with pytest.raises(FineserveError, match=r"early_stopping\.metric must be one of"):
        _spec(store, tmp_path, task=training_pb2.LANGUAGE_MODEL, base=training_pb2.BaseModel(random_init=True),
              hyperparameters=training_pb2.Hyperparameters(early_stopping=training_pb2.EarlyStopping(metric="f1")))


@pytest.mark.parametrize(("fields", "message"), [
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "dataset_id": "ds-img"}, "needs a TEXT_CSV dataset"),
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True), "arch": "resnet18"},
     "awd_lstm"),
    ({"task": training_pb2.LANGUAGE_MODEL}, "base is required"),
    ({"task": training_pb2.LANGUAGE_MODEL,
      "base": training_pb2.BaseModel(torchvision=training_pb2.TorchvisionWeights())}, "image backbones"),
    ({"task": training_pb2.TEXT_CLASSIFICATION, "base": training_pb2.BaseModel(weights_file="x.safetensors")},
     "stored LANGUAGE_MODEL"),
    ({"task": training_pb2.TEXT_CLASSIFICATION,
      "base": training_pb2.BaseModel(stored_model={"name": "nope"})}, "not found"),
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "hyperparameters": training_pb2.Hyperparameters(image_size=64)}, "image_size does not apply"),
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "text": training_pb2.TextOptions(bptt=2)}, "text.bptt=2"),
    # model size: each dimension alone is within its bound, the model they make is not
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "text": training_pb2.TextOptions(hidden_size=8192, n_layers=8)},
     r"parameters of the model \(max_vocab x emb_size \+ 8 LSTMs of hidden_size 8192\)=3\.54098e\+09 is outside"),
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "text": training_pb2.TextOptions(max_vocab=1_000_000, emb_size=4096)}, "parameters of the model"),
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "hyperparameters": training_pb2.Hyperparameters(stages=[training_pb2.TrainingStage(epochs=1)] * 1001)},
     r"len\(stages\)=1001"),
    ({"task": training_pb2.LANGUAGE_MODEL, "base": training_pb2.BaseModel(random_init=True),
      "hyperparameters": training_pb2.Hyperparameters(stages=[training_pb2.TrainingStage(epochs=999)] * 2)},
     "total epochs"),
])
def test_refused(store: TenantStore, tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(FineserveError, match=message):
        _spec(store, tmp_path, **fields)


def test_find_learning_rate_for_a_text_classifier(store: TenantStore, tmp_path: Path) -> None:
    req = training_pb2.FindLearningRateRequest(
        task=training_pb2.TEXT_CLASSIFICATION, dataset_id="ds-text", base=training_pb2.BaseModel(random_init=True),
        text=training_pb2.TextOptions(emb_size=16, max_len=40), num_batches=30, freeze_to=3,
        hyperparameters=training_pb2.Hyperparameters(batch_size=8))
    spec = find_lr_spec(req, store, (tmp_path,))
    assert (spec.kind, spec.task, spec.out_dir) == (FIND_LR, "text_classification", "")
    assert (spec.config.emb_size, spec.config.max_len, spec.config.batch_size) == (16, 40, 8)
    assert spec.lr_range == LrRange(1e-7, 10.0, 30, 3)
    # freeze_to is bounded by the config's layer groups: n_layers (3) + 2 for a classifier
    for bad, message in (({"arch": "resnet18"}, "awd_lstm"), ({"freeze_to": 5}, r"freeze_to must be in \[0, 4\]"),
                         ({"dataset_id": "ds-img"}, "needs a TEXT_CSV dataset")):
        wrong = training_pb2.FindLearningRateRequest()
        wrong.CopyFrom(req)
        for name, value in bad.items():
            setattr(wrong, name, value)
        with pytest.raises(FineserveError, match=message):
            find_lr_spec(wrong, store, (tmp_path,))


def test_text_jobs_take_auto_lr_unless_lr_is_given(store: TenantStore, tmp_path: Path) -> None:
    base = training_pb2.BaseModel(random_init=True)
    auto = _spec(store, tmp_path, task=training_pb2.LANGUAGE_MODEL, base=base,
                 hyperparameters=training_pb2.Hyperparameters(auto_lr=True))
    assert auto.config.auto_lr is True and auto.config.lr == TextConfig().lr
    given = _spec(store, tmp_path, task=training_pb2.LANGUAGE_MODEL, base=base,
                  hyperparameters=training_pb2.Hyperparameters(auto_lr=True, lr=3e-3))
    assert given.config.auto_lr is False and given.config.lr == 3e-3
