"""CreateFineTuneJob and FindLearningRate requests for the image tasks: the typed job spec the front door builds,
and what it refuses before anything is queued (no Ray, no torch). Bounds are the one table's
(fineserve_common.bounds), and the engine's config validates itself at the door."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.store import Store, TenantStore
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_common.configs import BaseWeights, FineTuneConfig, Stage
from fineserve_common.errors import FineserveError
from fineserve_common.spec import FIND_LR, FINE_TUNE, JobSpec, LrRange
from service.job_requests import find_lr_spec, fine_tune_spec

Req = training_pb2.CreateFineTuneJobRequest
HP = training_pb2.Hyperparameters
TORCHVISION = training_pb2.BaseModel(torchvision=training_pb2.TorchvisionWeights())


@pytest.fixture
def store(tmp_path: Path) -> TenantStore:
    s = Store(tmp_path / "f.db")
    s.put_dataset(datasets_pb2.Dataset(id="ds-img", name="i", layout=datasets_pb2.IMAGE_FOLDERS, tenant="default"),
                  str(tmp_path))
    s.put_dataset(datasets_pb2.Dataset(id="ds-seg", name="s", layout=datasets_pb2.IMAGE_MASKS, tenant="default",
                                       summary=datasets_pb2.DatasetSummary(classes=["Sky", "Void"])), str(tmp_path))
    s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="pets", version=1), arch="resnet34",
                                 task=training_pb2.IMAGE_CLASSIFICATION, tenant="default"), str(tmp_path / "pets"))
    return s.for_tenant("default")


def _spec(store: TenantStore, tmp_path: Path, **fields: object) -> JobSpec:
    request = Req(**{"model_name": "m", "dataset_id": "ds-img", "task": training_pb2.IMAGE_CLASSIFICATION,
                     "base": TORCHVISION, **fields})
    return fine_tune_spec(request, store, (tmp_path,), tmp_path / "out")


def test_image_spec(store: TenantStore, tmp_path: Path) -> None:
    spec = _spec(store, tmp_path, arch="resnet34", resources=common_pb2.Resources(cpu_only=True, workers=2),
                 hyperparameters=HP(epochs=2, lr=1e-3, precision=training_pb2.BF16, flip=False,
                                    stages=[training_pb2.TrainingStage(epochs=1, freeze_to=2, image_size=64)]))
    assert (spec.kind, spec.task, spec.dataset_dir, spec.workers) == (FINE_TUNE, "image_classification",
                                                                      str(tmp_path), 2)
    cfg = spec.config
    assert isinstance(cfg, FineTuneConfig) and cfg.base == BaseWeights("torchvision")
    assert (cfg.arch, cfg.epochs, cfg.lr, cfg.precision, cfg.flip, cfg.device) == (
        "resnet34", 2, 1e-3, "bf16", False, "cpu")
    assert cfg.stages == (Stage(1, 2, 64),) and cfg.batch_size == FineTuneConfig().batch_size
    assert JobSpec.from_json(spec.to_json()) == spec


def test_a_stored_base_of_the_same_arch(store: TenantStore, tmp_path: Path) -> None:
    base = training_pb2.BaseModel(stored_model=common_pb2.ModelRef(name="pets"))
    spec = _spec(store, tmp_path, arch="resnet34", base=base)
    assert spec.config.base == BaseWeights("store", name="pets/1", path=str(tmp_path / "pets"))
    with pytest.raises(FineserveError, match="is a resnet34, not a resnet18"):
        _spec(store, tmp_path, base=base)


def test_early_stopping_without_a_patience_takes_the_configs_default(store: TenantStore, tmp_path: Path) -> None:
    """proto3 reads an unset patience as 0: a metric alone stops after the config's default patience (3)."""
    es = training_pb2.EarlyStopping
    cfg = _spec(store, tmp_path, hyperparameters=HP(early_stopping=es(metric="accuracy"))).config
    assert (cfg.early_stopping_metric, cfg.early_stopping_patience) == ("accuracy", 3)
    assert FineTuneConfig().early_stopping_patience == 3
    cfg = _spec(store, tmp_path, hyperparameters=HP(early_stopping=es(metric="valid_loss", patience=5))).config
    assert (cfg.early_stopping_metric, cfg.early_stopping_patience) == ("valid_loss", 5)
    with pytest.raises(FineserveError, match=r"early_stopping\.patience=-1 is outside \[1, 1000\]"):
        _spec(store, tmp_path, hyperparameters=HP(early_stopping=es(metric="accuracy", patience=-1)))


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"task": training_pb2.TASK_UNSPECIFIED}, "INVALID_ARGUMENT", "task is required"),
    ({"model_name": "Bad Name"}, "INVALID_ARGUMENT", "model_name"),
    ({"arch": "vgg16"}, "INVALID_ARGUMENT", "not one of resnet18"),
    ({"dataset_id": "ds-seg"}, "INVALID_ARGUMENT", "needs a IMAGE_FOLDERS dataset"),
    ({"dataset_id": "nope"}, "NOT_FOUND", "not found"),
    ({"base": training_pb2.BaseModel()}, "INVALID_ARGUMENT", "base is required"),
    ({"base": training_pb2.BaseModel(weights_file="/etc/passwd")}, "INVALID_ARGUMENT", "outside the allowed roots"),
    ({"base": training_pb2.BaseModel(random_init=True), "hyperparameters": HP(epochs=0)}, "INVALID_ARGUMENT",
     "epochs"),
    # one bounds table: lr is (0, 10] wherever it is checked
    ({"hyperparameters": HP(lr=0)}, "INVALID_ARGUMENT", r"hyperparameters\.lr=0 is outside \(0, 10\]"),
    ({"hyperparameters": HP(image_size=4096)}, "INVALID_ARGUMENT", r"image_size=4096 is outside \[16, 2048\]"),
    ({"hyperparameters": HP(moms_min=0.9, moms_max=0.8)}, "INVALID_ARGUMENT", "must not exceed moms_max"),
    ({"hyperparameters": HP(group_lrs=[1e-3])}, "INVALID_ARGUMENT", "one rate per layer group"),
    ({"hyperparameters": HP(stages=[training_pb2.TrainingStage(epochs=1, freeze_to=3)])}, "INVALID_ARGUMENT",
     "must be < 3"),
    ({"hyperparameters": HP(stages=[training_pb2.TrainingStage(epochs=0)])}, "INVALID_ARGUMENT",
     r"stages\[0\]: stage.epochs=0"),
    ({"hyperparameters": HP(void_code="Void")}, "INVALID_ARGUMENT", "SEGMENTATION only"),
    ({"hyperparameters": HP(precision=training_pb2.FP16), "resources": common_pb2.Resources(cpu_only=True)},
     "INVALID_ARGUMENT", "fp16 needs a GPU"),
    ({"resources": common_pb2.Resources(workers=65)}, "INVALID_ARGUMENT", r"resources\.workers=65 is outside"),
    ({"resources": common_pb2.Resources(workers=32)}, "INVALID_ARGUMENT",
     r"batch_size=32 \(the default\) is the global batch: 32 workers need at least 64"),
    ({"resources": common_pb2.Resources(workers=2), "hyperparameters": HP(auto_lr=True)}, "INVALID_ARGUMENT",
     "auto_lr runs the LR range test on one worker"),
    ({"task": training_pb2.MULTI_LABEL_CLASSIFICATION, "resources": common_pb2.Resources(workers=2)},
     "INVALID_ARGUMENT", "run on one worker"),
    # limits that could be walked around or failed late (issue 24, fault 8)
    ({"hyperparameters": HP(stages=[training_pb2.TrainingStage(epochs=1)] * 10_000)}, "INVALID_ARGUMENT",
     r"hyperparameters\.len\(stages\)=10000 is outside \[0, 100\]"),
    ({"hyperparameters": HP(stages=[training_pb2.TrainingStage(epochs=600)] * 2)}, "INVALID_ARGUMENT",
     r"total epochs \(over all stages\)=1200 is outside \[1, 1000\]"),
    ({"hyperparameters": HP(freeze_epochs=600, epochs=600)}, "INVALID_ARGUMENT", "total epochs"),
    ({"resources": common_pb2.Resources(gpus_per_worker=float("nan"))}, "INVALID_ARGUMENT",
     r"resources\.gpus_per_worker=nan is outside"),
    ({"resources": common_pb2.Resources(gpus_per_worker=-1)}, "INVALID_ARGUMENT", "resources.gpus_per_worker=-1"),
    ({"resources": common_pb2.Resources(cpus_per_worker=float("nan"))}, "INVALID_ARGUMENT",
     "resources.cpus_per_worker=nan"),
    ({"resources": common_pb2.Resources(cpus_per_worker=-1)}, "INVALID_ARGUMENT", "resources.cpus_per_worker=-1"),
    ({"resources": common_pb2.Resources(cpus_per_worker=float("inf"))}, "INVALID_ARGUMENT", "cpus_per_worker=inf"),
    ({"hyperparameters": HP(early_stopping=training_pb2.EarlyStopping(min_delta=float("nan")))},
     "INVALID_ARGUMENT", r"early_stopping\.min_delta=nan"),
    ({"hyperparameters": HP(early_stopping=training_pb2.EarlyStopping(metric="accuracy", min_delta=float("inf")))},
     "INVALID_ARGUMENT", r"early_stopping\.min_delta=inf"),
    ({"request_id": "retry\x1b[2J1"}, "INVALID_ARGUMENT", "request_id .* holds the control character"),
    ({"request_id": "r" * 129}, "INVALID_ARGUMENT", "request_id is 129 characters long; at most 128"),
    ({"arch": "resnet50", "hyperparameters": HP(image_size=1024, batch_size=1024)}, "INVALID_ARGUMENT",
     r"batch_size x image_size\^2 \(1024 x 1024\^2, the largest stage\)=1\.07374e\+09 is outside"),
    ({"hyperparameters": HP(batch_size=256, stages=[training_pb2.TrainingStage(epochs=1, image_size=2048)])},
     "INVALID_ARGUMENT", r"\(256 x 2048\^2, the largest stage\)"),
    # ids and names: bounded at the door, and never quoted whole
    ({"dataset_id": "d" * 20_000}, "INVALID_ARGUMENT", "dataset_id is 20000 characters long"),
    ({"base": training_pb2.BaseModel(stored_model=common_pb2.ModelRef(name="n" * 20_000))}, "INVALID_ARGUMENT",
     "base.stored_model.name is 20000 characters long"),
    ({"base": training_pb2.BaseModel(torchvision=training_pb2.TorchvisionWeights(weights="W" * 5000))},
     "INVALID_ARGUMENT", "base.torchvision.weights is 5000 characters long"),
    ({"arch": "a" * 20_000}, "INVALID_ARGUMENT", r"arch 'a+\.\.\.a+' \(20000 characters\) is not one of"),
    ({"model_name": "M" * 20_000}, "INVALID_ARGUMENT", r"\(20000 characters\) must match"),
])
def test_refused(store: TenantStore, tmp_path: Path, fields: dict, status: str, message: str) -> None:
    with pytest.raises(FineserveError, match=message) as refused:
        _spec(store, tmp_path, **fields)
    assert refused.value.status == status
    assert len(refused.value.message) < 300, "a caller's value is quoted clipped"


def test_a_large_legal_gpu_job_fits_the_bounds(store: TenantStore, tmp_path: Path) -> None:
    """ResNet-50 at 224 px in batches of 256 on a GPU, 100 stages of 10 epochs: legal, however large."""
    stages = [training_pb2.TrainingStage(epochs=10, freeze_to=i % 3) for i in range(100)]
    spec = _spec(store, tmp_path, arch="resnet50", request_id="nightly run #7 (ünïcode ok)",
                 resources=common_pb2.Resources(gpus_per_worker=1, cpus_per_worker=16),
                 hyperparameters=HP(image_size=224, batch_size=256, stages=stages))
    assert spec.config.batch_size * spec.config.image_size ** 2 == 12_845_056
    assert sum(s.epochs for s in spec.config.resolved_stages()) == 1000


def test_segmentation_void_code_is_a_class_of_the_dataset(store: TenantStore, tmp_path: Path) -> None:
    spec = _spec(store, tmp_path, task=training_pb2.SEGMENTATION, dataset_id="ds-seg", hyperparameters=HP(void_code=""))
    assert spec.config.void_code == ""
    with pytest.raises(FineserveError, match="is not a class of dataset ds-seg"):
        _spec(store, tmp_path, task=training_pb2.SEGMENTATION, dataset_id="ds-seg", hyperparameters=HP(void_code="x"))


def test_find_learning_rate(store: TenantStore, tmp_path: Path) -> None:
    req = training_pb2.FindLearningRateRequest(task=training_pb2.IMAGE_CLASSIFICATION, dataset_id="ds-img",
                                               base=TORCHVISION, start_lr=1e-6, freeze_to=2)
    spec = find_lr_spec(req, store, (tmp_path,))
    assert (spec.kind, spec.out_dir, spec.lr_range) == (FIND_LR, "", LrRange(1e-6, 10.0, 100, 2))
    for bad, message in (({"freeze_to": 3}, r"freeze_to must be in \[0, 2\]"),
                         ({"start_lr": 20.0}, "start_lr < end_lr"), ({"num_batches": -1}, "num_batches=-1"),
                         ({"resources": common_pb2.Resources(workers=2)}, "FindLearningRate run on one worker")):
        wrong = training_pb2.FindLearningRateRequest()
        wrong.CopyFrom(req)
        for name, value in bad.items():
            if isinstance(value, common_pb2.Resources):
                getattr(wrong, name).CopyFrom(value)
            else:
                setattr(wrong, name, value)
        with pytest.raises(FineserveError, match=message):
            find_lr_spec(wrong, store, (tmp_path,))
