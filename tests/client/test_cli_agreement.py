"""The command's checks agree with the front door's: for every task and every --set key, a request the command sends
is one the door's checker (service.job_requests, no server needed) accepts, and a key the command refuses for a
task is one the door refuses too. So the command's early refusals never block a job the service would run."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.store import Store, TenantStore
from fineserve.v1 import datasets_pb2, training_pb2, training_pb2_grpc
from fineserve_client import Client
from fineserve_client.cli import main
from fineserve_client.cli.hyperparameters import KEYS, keywords, typed
from fineserve_common.errors import FineserveError
from fineserve_common.tasks import TASKS
from service.job_requests import fine_tune_spec

SAMPLES = {
    "freeze_epochs": "2", "epochs": "2", "lr": "1e-3", "lr_mult": "50", "weight_decay": "0.05", "pct_start": "0.3",
    "batch_size": "16", "image_size": "64", "precision": "bf16", "valid_pct": "0.25", "seed": "7", "flip": "false",
    "div_factor": "10", "final_div_factor": "1e4", "moms_max": "0.9", "moms_min": "0.8",
    "group_lrs": "1e-5,1e-4,1e-3", "stages": "1:2,1:0", "label_smoothing": "0.1", "mixup_alpha": "0.4",
    "grad_clip": "1", "auto_lr": "true", "threshold": "0.4", "fbeta_beta": "1", "void_code": "Void",
    "keep": "last", "early_stopping.metric": "valid_loss", "early_stopping.patience": "2",
    "early_stopping.min_delta": "0.01",
}
"""A legal value of every --set key (and of keep, a field being added)."""
DATASETS = {"IMAGE_FOLDERS": "ds-img", "IMAGE_LABELS_CSV": "ds-multi", "IMAGE_MASKS": "ds-seg", "TEXT_CSV": "ds-text",
            "RATINGS_CSV": "ds-ratings", "TABULAR_CSV": "ds-table"}
EXTRA = {"language_model": ["--base", "none"], "text_classification": ["--base", "none"],
         "tabular": ["--option", "target=y"]}
"""What each task's job needs beyond the defaults."""


class Recorder(training_pb2_grpc.TrainingServicer):
    def __init__(self) -> None:
        self.requests: list[training_pb2.CreateFineTuneJobRequest] = []

    def CreateFineTuneJob(self, request, context):
        self.requests.append(request)
        return training_pb2.Job(id="job-1", state=training_pb2.QUEUED)


@pytest.fixture
def store(tmp_path: Path) -> TenantStore:
    s = Store(tmp_path / "f.db")
    for layout, dataset_id in DATASETS.items():
        s.put_dataset(datasets_pb2.Dataset(id=dataset_id, name=dataset_id, layout=datasets_pb2.DatasetLayout.Value(
            layout), tenant="default", summary=datasets_pb2.DatasetSummary(classes=["Sky", "Void"])), str(tmp_path))
    return s.for_tenant("default")


def test_every_key_has_a_sample() -> None:
    assert set(KEYS) <= set(SAMPLES)  # keep: a field another change adds


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_the_command_refuses_what_the_door_refuses(serve, store, tmp_path, capsys, task) -> None:
    servicer = Recorder()
    target = serve(servicer)
    accepted, refused = [], []
    for key in KEYS:
        value = SAMPLES[key]
        argv = ["--target", target, "train", "--dataset", DATASETS[task.layout], "--model", "m", "--task", task.name,
                "--no-wait", *EXTRA.get(task.name, []), "--set", f"{key}={value}"]
        status = main(argv)
        assert status in (0, 2), capsys.readouterr().err
        (accepted if status == 0 else refused).append(key)
    assert len(servicer.requests) == len(accepted)
    for request in servicer.requests:
        fine_tune_spec(request, store, (tmp_path,), tmp_path / "out")  # raises if the door refuses it
    with Client(target) as client:  # the SDK checks nothing: the door's verdict on what the command refused
        for key in refused:
            options = {"text": {}} if task.family == "text" else {}
            client.create_fine_tune_job(
                DATASETS[task.layout], "m", task=task.name, base="none" if task.family == "text" else None,
                tabular={"target": "y"} if task.name == "tabular" else None,
                **keywords({key: ("", typed(key, SAMPLES[key], key))}, task), **options)
            with pytest.raises(FineserveError):
                fine_tune_spec(servicer.requests[-1], store, (tmp_path,), tmp_path / "out")
    assert accepted and (refused or task.name == "segmentation")
