"""PostgreSQL as the job store, against the real server of conftest's `postgres` fixture: its schema is migrated
once and a newer one refused; a database restart, between calls or during one, loses nothing, also in the middle
of a job the job manager drives; writers never interleave, even from two processes; a write run again after its
commit's answer was lost changes nothing; and the URL's password never reaches the log, a repr or an error."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from pg_server import PostgresServer
from test_job_scheduling import Harness, settle, started

from control.job_queue import JobQueue
from control.store import SCHEMA_VERSION, Store
from control.store.core import Rows, Tx
from control.store.postgres import WRITE_LOCK, PostgresDatabase
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_common.errors import FailedPrecondition, ResourceExhausted
from fineserve_common.events import Batch, Checkpoint, Epoch, JobResult, Succeeded
from service.config import parse_settings
from service.server import control_settings

T = TypeVar("T")


def test_a_new_database_is_migrated_once_and_a_newer_schema_is_refused(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    s = Store(PostgresDatabase(url))
    assert s.schema_version == SCHEMA_VERSION
    s.put_job(training_pb2.Job(id="job-1", state=training_pb2.QUEUED), None)
    s.close()
    s = Store(PostgresDatabase(url))  # a second start finds the schema done and the rows there
    assert [j.id for j in s.unfinished_jobs()] == ["job-1"]
    s.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(FailedPrecondition, match=f"version {SCHEMA_VERSION + 1}, newer than this fineserve's"):
        PostgresDatabase(url)


class LostLogLine(logging.Handler):
    """Set once the store logs that its connection was lost (the call is then waiting for the database)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "connection lost" in record.getMessage():
            self.seen.set()


class Restarter(threading.Thread):
    """Stops the database now and starts it again once a store call has found it gone (event-based)."""

    def __init__(self, postgres: PostgresServer) -> None:
        super().__init__()
        self.postgres, self.lost = postgres, LostLogLine()
        self.logger = logging.getLogger("control.store.postgres")
        self.logger.addHandler(self.lost)
        postgres.stop()
        self.start()

    def run(self) -> None:
        self.lost.seen.wait(60)
        self.logger.removeHandler(self.lost)
        self.postgres.start()

    def done(self) -> None:
        self.join()
        assert self.lost.seen.is_set(), "no store call met the stopped database"


def test_a_database_restart_between_and_during_calls_loses_nothing(postgres: PostgresServer,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    s = Store(PostgresDatabase(postgres.new_database()))
    try:
        s.put_dataset(datasets_pb2.Dataset(id="ds-1", layout=1), "/d")
        s.put_job(training_pb2.Job(id="job-1", state=training_pb2.RUNNING), None)
        s.append_event(training_pb2.JobEvent(job_id="job-1", log=training_pb2.LogMessage(message="one")))
        postgres.stop()
        postgres.start()  # the store's connection is gone: its next call reconnects
        assert s.append_event(training_pb2.JobEvent(job_id="job-1")).sequence == 2
        restarter = Restarter(postgres)
        s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=1)), "/m/1")  # waits for it
        restarter.done()
        assert s.append_event(training_pb2.JobEvent(job_id="job-1")).sequence == 3
        assert [e.sequence for e in s.events("job-1", 1)] == [1, 2, 3]
        assert s.get_dataset("ds-1", tenant="default")[1] == "/d" and s.get_model("m", 1, tenant="default")
        assert s.get_job("job-1").state == training_pb2.RUNNING
    finally:
        postgres.ensure_running()
        s.close()
    assert "connection lost" in caplog.text and "connection back" in caplog.text
    assert postgres.password not in caplog.text


def test_a_running_job_goes_on_through_a_database_restart(tmp_path: Path, postgres: PostgresServer) -> None:
    """The job manager's store calls meet a restarted database while the job runs, and then a stopped one while
    its worker reports the result: the job succeeds with every event stored once, in order."""

    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(), store=Store(PostgresDatabase(postgres.new_database())))
        h.create("job-a")
        await settle()
        run = h.run("job-a")
        for ev in (started(), Batch("stage-1", 1, 1, 1, 4, loss=0.9, lr=1e-3)):
            run.feed.put_nowait(ev)
        await settle()
        assert h.state("job-a") == training_pb2.RUNNING
        postgres.stop()
        postgres.start()
        for ev in (Batch("stage-1", 1, 1, 2, 4, loss=0.8, lr=1e-3), Epoch("stage-1", 1, 1, {"valid_loss": 0.5})):
            run.feed.put_nowait(ev)
        await settle()
        restarter = Restarter(postgres)
        for ev in (Checkpoint(1, "/ckpt"), Succeeded(JobResult(card={"task": "image_classification"}))):
            run.feed.put_nowait(ev)
        await settle()  # the manager's next store call waits for the database, then the job ends
        restarter.done()
        await settle()
        job = h.jobs.get("job-a")
        assert job.state == training_pb2.SUCCEEDED and job.progress.batch == 2 and h.models.published == ["job-a"]
        events = h.store.events("job-a", 1)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        kinds = [e.WhichOneof("event") for e in events]
        assert [k for k in kinds if k != "state" and k != "log"] == ["batch", "batch", "epoch", "checkpoint"]
        assert events[-1].state.state == training_pb2.SUCCEEDED
        await h.close()

    try:
        asyncio.run(scenario())
    finally:
        postgres.ensure_running()


class RetriedTx:
    """A transaction of a call run again after its first run's commit answer was lost."""

    retried = True

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        return self._tx.execute(sql, args)

    def set_schema_version(self, version: int) -> None:
        self._tx.set_schema_version(version)


class LostAnswers:
    """The real database, with every write committed and then run again as a reconnecting store would, had the
    commit's answer been lost on the way."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def write(self, fn: Callable[[Any], T]) -> T:
        self._db.write(fn)
        return self._db.write(lambda tx: fn(RetriedTx(tx)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_write_run_again_after_its_commit_changes_nothing(postgres: PostgresServer) -> None:
    s = Store(LostAnswers(PostgresDatabase(postgres.new_database())), max_active_jobs=1)  # type: ignore[arg-type]
    s.put_dataset(datasets_pb2.Dataset(id="ds-1"), "/d")
    job = s.put_job(training_pb2.Job(id="job-1", state=training_pb2.QUEUED), None)  # its own row: not over the cap
    assert job.id == "job-1" and job.queue_position == 1
    event = s.append_event(training_pb2.JobEvent(job_id="job-1", log=training_pb2.LogMessage(message="x")))
    assert event.sequence == 1 and [e.sequence for e in s.events("job-1", 1)] == [1]
    s.put_model(models_pb2.Model(ref=common_pb2.ModelRef(name="m", version=1)), "/m/1")
    assert s.delete_models("m", 0, tenant="default") == [(1, "/m/1")]  # the files still go
    assert len(s.list_datasets(0, 0, 10, tenant="default")) == 1


def test_writers_in_two_processes_never_interleave(postgres: PostgresServer) -> None:
    """Another coordinator's write transaction holds the writers' lock with a job not yet committed: this store's
    put_job waits for it, and then counts that job against the tenant's cap (one active job)."""
    url = postgres.new_database()
    s = Store(PostgresDatabase(url), max_active_jobs=1)
    other = psycopg.connect(url)
    other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
    other.execute("INSERT INTO jobs (id, created, state, model_name, body, tenant) VALUES (%s, 0, %s, 'm', %s, "
                  "'default')", ("theirs", training_pb2.QUEUED, training_pb2.Job(id="theirs").SerializeToString()))
    outcome: list[BaseException | None] = []
    mine = threading.Thread(target=lambda: outcome.append(_error_of(s.put_job, training_pb2.Job(id="mine"), None)))
    mine.start()
    with psycopg.connect(url, autocommit=True) as watch:
        for _ in range(600):  # until this store's transaction waits for the lock (a generous deadline)
            if watch.execute("SELECT 1 FROM pg_stat_activity WHERE application_name='fineserve-coordinator' "
                             "AND wait_event_type='Lock'").fetchone():
                break
            time.sleep(0.05)
        else:
            pytest.fail("put_job did not wait for the other writer")
    other.commit()
    other.close()
    mine.join()
    assert isinstance(outcome[0], ResourceExhausted) and s.get_job("mine") is None
    s.close()


def _error_of(fn: Callable[..., Any], *args: Any) -> BaseException | None:
    try:
        fn(*args)
    except Exception as e:
        return e
    return None


@pytest.mark.parametrize("url", ["mysql://fineserve:pa55word@db/fineserve",
                                 "postgresql://fineserve:pa55 word@db/fineserve",
                                 "postgresql://fineserve:pa55word@db/fineserve?no_such_parameter=1"])
def test_a_bad_job_store_setting_stops_the_start_without_repeating_it(url: str, capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--job-store", url])
    err = capsys.readouterr().err
    assert "--job-store" in err and "pa55" not in err
    good = "postgresql://fineserve:pa55word@db:5432/fineserve?sslmode=require"
    monkeypatch.setenv("FINESERVE_JOB_STORE", good)
    settings = parse_settings([])
    assert settings.job_store == good and "pa55" not in repr(settings) + repr(control_settings(settings))
