"""The SQLite store keeps everything across reopen (a job's spec included), numbers events without gaps, is
idempotent, and migrates an older file in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from control.store import SCHEMA_VERSION, TABLES, Store
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_common.configs import FineTuneConfig
from fineserve_common.spec import FINE_TUNE, JobSpec


def test_reopen_keeps_datasets_jobs_events_models(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    s = Store(db)
    s.put_dataset(datasets_pb2.Dataset(id="ds-1", name="d", layout=1), "/x")
    req = training_pb2.CreateFineTuneJobRequest(model_name="m", request_id="r1")
    s.put_job(training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=req), "r1")
    for _ in range(3):
        s.append_event(training_pb2.JobEvent(job_id="job-1", log=training_pb2.LogMessage(message="hi")))
    s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=1)), "/m/1")
    s.close()

    s = Store(db)
    assert s.get_dataset("ds-1", tenant="default")[1] == "/x"
    assert s.get_job("job-1").request.request_id == "r1"
    assert [e.sequence for e in s.events("job-1", 2)] == [2, 3]
    assert s.get_model("m", 0, tenant="default")[1] == "/m/1"
    assert s.next_model_version("m", tenant="default") == 2
    assert [j.id for j in s.unfinished_jobs()] == ["job-1"]


def test_request_id_returns_the_first_job(tmp_path: Path) -> None:
    s = Store(tmp_path / "f.db")
    first = s.put_job(training_pb2.Job(id="job-1", request=training_pb2.CreateFineTuneJobRequest(model_name="m")),
                      "same")
    again = s.put_job(training_pb2.Job(id="job-2", request=training_pb2.CreateFineTuneJobRequest(model_name="m")),
                      "same")
    assert again.id == first.id == "job-1"
    assert s.get_job("job-2") is None


def test_delete_all_versions_and_every_models_change_is_announced(tmp_path: Path) -> None:
    s = Store(tmp_path / "f.db")
    changes = []
    s.on_models_changed = lambda: changes.append(s.get_model("m", 0, tenant="default"))  # after the commit
    for v in (1, 2):
        s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=v)), f"/m/{v}")
    assert [path for _, path in changes] == ["/m/1", "/m/2"]
    s.put_job(training_pb2.Job(id="j"), None)  # not a models change
    assert sorted(v for v, _ in s.delete_models("m", 0, tenant="default")) == [1, 2]
    assert s.get_model("m", 0, tenant="default") is None and changes[2:] == [None]


def test_a_job_keeps_its_spec(tmp_path: Path) -> None:
    s = Store(tmp_path / "f.db")
    spec = JobSpec(FINE_TUNE, "image_classification", FineTuneConfig(), "/data/ds-1", "/staging/job-1", workers=2)
    s.put_job(training_pb2.Job(id="job-1"), None, spec)
    s.put_job(training_pb2.Job(id="job-2"), None)
    s.close()
    s = Store(tmp_path / "f.db")
    assert s.job_spec("job-1") == spec and s.job_spec("job-2") is None


def test_a_version_2_store_gains_the_spec_column(tmp_path: Path) -> None:
    """Jobs stored before version 3 keep their rows, without a spec (the job manager fails them on re-queue)."""
    db = sqlite3.connect(tmp_path / "f.db")
    db.executescript(TABLES.replace(" spec TEXT,", ""))
    db.execute("INSERT INTO jobs (id, created, state, model_name, body) VALUES ('old', 1, ?, 'm', ?)",
               (training_pb2.QUEUED, training_pb2.Job(id="old", state=training_pb2.QUEUED).SerializeToString()))
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    s = Store(tmp_path / "f.db")
    assert s.schema_version == SCHEMA_VERSION == 3
    assert [j.id for j in s.unfinished_jobs()] == ["old"] and s.job_spec("old") is None
