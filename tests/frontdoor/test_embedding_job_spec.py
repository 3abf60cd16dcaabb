"""CreateFineTuneJob requests for collaborative filtering and tabular models: what the front door accepts and
the job spec it builds, and what it refuses before anything is queued (no Ray, no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.store import Store, TenantStore
from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_common.configs import CollabConfig
from fineserve_common.errors import FineserveError
from fineserve_common.spec import JobSpec
from service.job_requests import find_lr_spec, fine_tune_spec

Req = training_pb2.CreateFineTuneJobRequest
PATH_TRICKS = [("u.data\0.csv", "NUL byte"), ("x" * 5000, "5000 characters long"),
               ("/etc/passwd", "must be relative"), ("a/../u.data", r"must not contain '\.\.'"),
               ("..\\u.data", "not '\\\\'"), ("a" * 300 + "/b", "longer than 255")]
"""Names of files inside a data set that must be refused before the file system sees them, and why."""


@pytest.fixture
def store(tmp_path: Path) -> TenantStore:
    ratings = tmp_path / "ratings"
    ratings.mkdir()
    (ratings / "u.data").write_text("1\t2\t3\t0\n")
    (ratings / "u.item").write_text("2|Some film\n")
    s = Store(tmp_path / "f.db")
    s.put_dataset(datasets_pb2.Dataset(id="ds-r", name="r", layout=datasets_pb2.RATINGS_CSV, tenant="default"),
                  str(ratings))
    s.put_dataset(datasets_pb2.Dataset(id="ds-t", name="t", layout=datasets_pb2.TABULAR_CSV, tenant="default"),
                  str(tmp_path))
    return s.for_tenant("default")


def _spec(store: TenantStore, tmp_path: Path, **fields: object) -> JobSpec:
    return fine_tune_spec(Req(model_name="m", **fields), store, (), tmp_path / "out")


def test_collab_spec(store: TenantStore, tmp_path: Path) -> None:
    spec = _spec(store, tmp_path, task=training_pb2.COLLABORATIVE_FILTERING, dataset_id="ds-r", arch="neural",
                 hyperparameters=training_pb2.Hyperparameters(epochs=3, weight_decay=0.2),
                 collab=training_pb2.CollabOptions(items_file="u.item", y_range=[0.5, 5.5], split="time"))
    assert spec.task == "collaborative_filtering"
    cfg = spec.config
    assert isinstance(cfg, CollabConfig)
    assert cfg.arch == "neural" and cfg.epochs == 3 and cfg.weight_decay == 0.2 and cfg.precision == "fp32"
    assert cfg.ratings.items_file == "u.item" and cfg.y_range == (0.5, 5.5) and cfg.split == "time"
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(("fields", "message"), [
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-t"}, "needs a RATINGS_CSV dataset"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r", "arch": "resnet18"}, "not one of dot"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "base": training_pb2.BaseModel(torchvision=training_pb2.TorchvisionWeights())}, "train from scratch"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(items_file="../f.db")},
     r"collab.items_file '../f.db' must not contain '\.\.'"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(items_file="missing.item")}, "not a file inside"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(y_range=[5, 1])}, "low < high"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(separator="::")}, "one printable character"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "hyperparameters": training_pb2.Hyperparameters(mixup_alpha=0.4)}, "mixup_alpha do not apply"),
    ({"task": training_pb2.TABULAR, "dataset_id": "ds-t"}, "tabular.target is required"),
    ({"task": training_pb2.TABULAR, "dataset_id": "ds-t",
      "tabular": training_pb2.TabularOptions(target="y", continuous=["y"])}, "only one of"),
    ({"task": training_pb2.TABULAR, "dataset_id": "nope", "tabular": training_pb2.TabularOptions(target="y")},
     "not found"),
    # every file a caller names is a usable relative name (issue 24, fault 4), refused naming the field
    *[({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
        "collab": training_pb2.CollabOptions(**{field: name})}, rf"collab\.{field} .*{why}")
      for field in ("ratings_file", "items_file") for name, why in PATH_TRICKS],
    *[({"task": training_pb2.TABULAR, "dataset_id": "ds-t",
        "tabular": training_pb2.TabularOptions(target="y", data_file=name)}, rf"tabular\.data_file .*{why}")
      for name, why in PATH_TRICKS],
    ({"task": training_pb2.TABULAR, "dataset_id": "ds-t", "tabular": training_pb2.TabularOptions(target="y\0")},
     "tabular.target .* NUL byte"),
    ({"task": training_pb2.TABULAR, "dataset_id": "ds-t",
      "tabular": training_pb2.TabularOptions(target="y", categorical=["c"] * 1001)}, r"len\(tabular.categorical\)"),
    ({"task": training_pb2.TABULAR, "dataset_id": "ds-t",
      "tabular": training_pb2.TabularOptions(target="y", separator="\0")}, "tabular.separator"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(user_column="u" * 5000)}, "collab.user_column is 5000 characters"),
    # y_range: finite and bounded
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(y_range=[0, float("inf")])}, r"y_range\[\]=inf is outside"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(y_range=[float("nan"), 5])}, r"y_range\[\]=nan is outside"),
    ({"task": training_pb2.COLLABORATIVE_FILTERING, "dataset_id": "ds-r",
      "collab": training_pb2.CollabOptions(y_range=[0, 1, 2])}, "must be"),
])
def test_bad_requests_are_refused(store: TenantStore, tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(FineserveError, match=message):
        _spec(store, tmp_path, **fields)


def test_find_lr_is_not_offered_for_embedding_tasks(store: TenantStore) -> None:
    with pytest.raises(FineserveError, match="FindLearningRate for TABULAR"):
        find_lr_spec(training_pb2.FindLearningRateRequest(task=training_pb2.TABULAR, dataset_id="ds-t"), store, ())
