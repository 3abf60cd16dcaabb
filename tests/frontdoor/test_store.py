"""The SQLite store keeps everything across reopen, numbers events without gaps, and is idempotent."""

from __future__ import annotations

from pathlib import Path

from control.store import Store
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2


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
