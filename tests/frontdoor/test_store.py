"""The store keeps everything across reopen (a job's spec included), numbers events without gaps, is idempotent
and caps a tenant's active jobs, on SQLite and on PostgreSQL alike (open_test_store); SQLite migrates an older
file in place."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from control.store import SCHEMA_VERSION, SQLITE_TABLES, Store
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_common.configs import FineTuneConfig
from fineserve_common.errors import ResourceExhausted
from fineserve_common.spec import FINE_TUNE, JobSpec


def test_reopen_keeps_datasets_jobs_events_models(open_test_store: Callable[..., Store]) -> None:
    s = open_test_store()
    s.put_dataset(datasets_pb2.Dataset(id="ds-1", name="d", layout=1), "/x")
    req = training_pb2.CreateFineTuneJobRequest(model_name="m", request_id="r1")
    s.put_job(training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=req), "r1")
    for _ in range(3):
        s.append_event(training_pb2.JobEvent(job_id="job-1", log=training_pb2.LogMessage(message="hi")))
    s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=1)), "/m/1")
    s.close()

    s = open_test_store()
    assert s.get_dataset("ds-1", tenant="default")[1] == "/x"
    assert s.get_job("job-1").request.request_id == "r1"
    assert [e.sequence for e in s.events("job-1", 2)] == [2, 3]
    assert s.get_model("m", 0, tenant="default")[1] == "/m/1"
    assert s.next_model_version("m", tenant="default") == 2
    assert [j.id for j in s.unfinished_jobs()] == ["job-1"]


def test_request_id_returns_the_first_job(open_test_store: Callable[..., Store]) -> None:
    s = open_test_store()
    first = s.put_job(training_pb2.Job(id="job-1", request=training_pb2.CreateFineTuneJobRequest(model_name="m")),
                      "same")
    again = s.put_job(training_pb2.Job(id="job-2", request=training_pb2.CreateFineTuneJobRequest(model_name="m")),
                      "same")
    assert again.id == first.id == "job-1"
    assert s.get_job("job-2") is None


def test_delete_all_versions_and_every_models_change_is_announced(open_test_store: Callable[..., Store]) -> None:
    s = open_test_store()
    changes = []
    s.on_models_changed = lambda: changes.append(s.get_model("m", 0, tenant="default"))  # after the commit
    for v in (1, 2):
        s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=v)), f"/m/{v}")
    assert [path for _, path in changes] == ["/m/1", "/m/2"]
    s.put_job(training_pb2.Job(id="j"), None)  # not a models change
    assert sorted(v for v, _ in s.delete_models("m", 0, tenant="default")) == [1, 2]
    assert s.get_model("m", 0, tenant="default") is None and changes[2:] == [None]


def test_a_job_keeps_its_spec(open_test_store: Callable[..., Store]) -> None:
    s = open_test_store()
    spec = JobSpec(FINE_TUNE, "image_classification", FineTuneConfig(), "/data/ds-1", "/staging/job-1", workers=2)
    s.put_job(training_pb2.Job(id="job-1"), None, spec)
    s.put_job(training_pb2.Job(id="job-2"), None)
    s.close()
    s = open_test_store()
    assert s.job_spec("job-1") == spec and s.job_spec("job-2") is None


def test_a_version_2_store_gains_the_spec_column(tmp_path: Path) -> None:
    """Jobs stored before version 3 keep their rows, without a spec (the job manager fails them on re-queue)."""
    db = sqlite3.connect(tmp_path / "f.db")
    db.executescript(SQLITE_TABLES.replace(" spec TEXT,", ""))
    db.execute("INSERT INTO jobs (id, created, state, model_name, body) VALUES ('old', 1, ?, 'm', ?)",
               (training_pb2.QUEUED, training_pb2.Job(id="old", state=training_pb2.QUEUED).SerializeToString()))
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    s = Store(tmp_path / "f.db")
    assert s.schema_version == SCHEMA_VERSION == 3
    assert [j.id for j in s.unfinished_jobs()] == ["old"] and s.job_spec("old") is None


def test_queries_filter_by_tenant_state_name_and_layout(open_test_store: Callable[..., Store]) -> None:
    """Every listing and the active-job cap, so that each query runs on each database."""
    s = open_test_store(max_active_jobs=2)
    for i, (tenant, layout) in enumerate([("a", 1), ("a", 2), ("b", 1)]):
        s.put_dataset(datasets_pb2.Dataset(id=f"ds-{i}", layout=layout, tenant=tenant), f"/d/{i}")
    assert [d.id for d in s.list_datasets(1, 0, 10, tenant="a")] == ["ds-0"]
    assert [d.id for d in s.list_datasets(0, 0, 10, tenant="a")] == ["ds-1", "ds-0"]  # newest first
    assert s.get_dataset("ds-2", tenant="a") is None
    s.delete_dataset("ds-0", tenant="a")
    assert s.for_tenant("a").get_dataset("ds-0") is None

    for job_id, model in (("j1", "m"), ("j2", "n")):
        s.put_job(training_pb2.Job(id=job_id, state=training_pb2.QUEUED, tenant="a",
                                   request=training_pb2.CreateFineTuneJobRequest(model_name=model)), None)
    with pytest.raises(ResourceExhausted, match="max_concurrent_jobs_per_tenant=2"):
        s.put_job(training_pb2.Job(id="j3", state=training_pb2.QUEUED, tenant="a"), None)
    s.put_job(training_pb2.Job(id="j4", state=training_pb2.QUEUED, tenant="b"), None)  # another tenant's cap
    assert [j.queue_position for j in s.unfinished_jobs()] == [1, 2, 3]
    done = s.get_job("j1")
    done.state = training_pb2.SUCCEEDED
    s.update_job(done)
    assert s.get_tenant_job("j1", tenant="b") is None and s.get_job("j2").queue_position == 1
    assert [j.id for j in s.list_jobs([training_pb2.SUCCEEDED] * 3, "", 0, 10, tenant="a")] == ["j1"]
    assert [j.id for j in s.for_tenant("a").list_jobs([], "n", 0, 10)] == ["j2"]

    for name, version in (("m", 1), ("m", 2), ("x", 1)):
        s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name=name, version=version), tenant="a"),
                    f"/m/{name}/{version}")
    assert [(m.ref.name, m.ref.version) for m in s.list_models("", 1, 2, tenant="a")] == [("m", 1), ("x", 1)]
    assert s.for_tenant("a").get_model("m", 1)[1] == "/m/m/1" and s.get_model("m", 0, tenant="b") is None
    assert s.delete_models("m", 2, tenant="a") == [(2, "/m/m/2")] and s.next_model_version("m", tenant="a") == 2
    assert sorted(s.model_paths()) == [("a", "m", 1, "/m/m/1"), ("a", "x", 1, "/m/x/1")]
