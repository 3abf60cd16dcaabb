"""SQLite store of datasets, jobs, job events and the model registry (one file, WAL mode).

Rows keep the API's protobuf messages as blobs next to the columns the queries filter on, so what a caller
reads after a restart is byte for byte what it read before.

Every dataset, job and model belongs to a tenant (a column, and the message's output-only `tenant` field).
Reads on behalf of a caller take the tenant and filter by it in SQL, so another tenant's rows are simply not
found. Job-by-id reads without a tenant (get_job, update_job, events) are for the job manager's own
bookkeeping; servicers use the tenant-scoped view (for_tenant) instead.

Schema versions (PRAGMA user_version): 0 = before tenancy (no tenant columns); 1 = tenant columns, model
files still at models/<name>/<version>; 2 = model files at models/<tenant>/<name>/<version>; 3 = each job keeps
the JobSpec it was created with (the spec column, JSON), so a re-queue never rebuilds it. An older data
directory is migrated in place on open (1, the spec column) and by the registry (the files; see
Registry.migrate_legacy_layout). Jobs stored before version 3 have no spec.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from fineserve.v1 import datasets_pb2, models_pb2, training_pb2
from fineserve_common.errors import ResourceExhausted
from fineserve_common.spec import JobSpec

DEFAULT_TENANT = "default"
"""The tenant of rows written before tenancy and of every caller of an open (keyless) service."""
SCHEMA_VERSION = 3
LAYOUT_VERSION = 2
"""The first version with model files at models/<tenant>/<name>/<version>: the registry moves older trees."""
TABLES = """
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, created REAL NOT NULL, layout INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default');
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, created REAL NOT NULL, state INTEGER NOT NULL, model_name TEXT NOT NULL,
  request_id TEXT, body BLOB NOT NULL, tenant TEXT NOT NULL DEFAULT 'default', spec TEXT,
  UNIQUE (tenant, request_id));
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS models (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default', PRIMARY KEY (tenant, name, version));
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS datasets_by_tenant ON datasets (tenant, created);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs (tenant, state);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
"""
# Version 0 -> 1: the UNIQUE/PRIMARY KEY constraints change, so jobs and models are rebuilt (SQLite cannot
# alter constraints); datasets only gain a column. One transaction: an interrupted migration leaves version 0.
MIGRATE_0_TO_1 = [
    "ALTER TABLE datasets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'",
    """CREATE TABLE jobs_v1 (
  id TEXT PRIMARY KEY, created REAL NOT NULL, state INTEGER NOT NULL, model_name TEXT NOT NULL,
  request_id TEXT, body BLOB NOT NULL, tenant TEXT NOT NULL DEFAULT 'default', UNIQUE (tenant, request_id))""",
    "INSERT INTO jobs_v1 (id, created, state, model_name, request_id, body) "
    "SELECT id, created, state, model_name, request_id, body FROM jobs",
    "DROP TABLE jobs",
    "ALTER TABLE jobs_v1 RENAME TO jobs",
    """CREATE TABLE models_v1 (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default', PRIMARY KEY (tenant, name, version))""",
    "INSERT INTO models_v1 (name, version, path, body) SELECT name, version, path, body FROM models",
    "DROP TABLE models",
    "ALTER TABLE models_v1 RENAME TO models",
]
ACTIVE = (training_pb2.QUEUED, training_pb2.RUNNING)
Message = TypeVar("Message", bound=ProtoMessage)


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def _owned(message: Any, tenant: str) -> Any:
    """Rows written before tenancy have no tenant in their blob: fill it from the column."""
    if not message.tenant:
        message.tenant = tenant
    return message


def _job(db: sqlite3.Connection, row: tuple[bytes, str, float, str]) -> training_pb2.Job:
    """A job row (body, tenant, created, id) with its queue position filled in (QUEUED jobs only)."""
    job = _owned(training_pb2.Job.FromString(row[0]), row[1])
    job.queue_position = 0
    if job.state == training_pb2.QUEUED:
        (ahead,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state=? AND (created<? OR (created=? AND id<?))",
                              (training_pb2.QUEUED, row[2], row[2], row[3])).fetchone()
        job.queue_position = int(ahead) + 1
    return job


JOB_COLUMNS = "body, tenant, created, id"


class Store:
    """Thread-safe access to the SQLite file; every method is one short transaction.

    max_active_jobs: QUEUED+RUNNING jobs one tenant may have (0 = no limit); put_job refuses more with
    RESOURCE_EXHAUSTED, checked in the same transaction as the insert so concurrent creations cannot overshoot.
    on_models_changed, when set, is called after each committed change to the models table (the coordinator
    tells front doors to drop their cached model lookups).
    """

    on_models_changed: Callable[[], None] | None = None

    def __init__(self, path: Path, max_active_jobs: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_active_jobs = max_active_jobs
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self._migrate()

    def _migrate(self) -> None:
        db = self._db
        existing = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if "datasets" not in existing:  # a new data directory starts at the current version
            db.executescript(TABLES + INDEXES)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return
        db.executescript(TABLES)  # tables a previous version had not created yet
        db.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                columns = {r[1] for r in db.execute("PRAGMA table_info(datasets)")}
                for sql in MIGRATE_0_TO_1 if "tenant" not in columns else []:
                    db.execute(sql)
                db.execute("PRAGMA user_version=1")
            if "spec" not in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}:
                db.execute("ALTER TABLE jobs ADD COLUMN spec TEXT")
            if version == LAYOUT_VERSION:  # else the registry's file move, still to come, records version 3
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        db.executescript(INDEXES)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def for_tenant(self, tenant: str) -> TenantStore:
        return TenantStore(self, tenant)

    def _models_changed(self) -> None:
        if self.on_models_changed is not None:
            self.on_models_changed()

    # datasets
    def put_dataset(self, ds: datasets_pb2.Dataset, path: str) -> None:
        tenant = ds.tenant or DEFAULT_TENANT
        with self._tx() as db:
            db.execute("INSERT INTO datasets (id, created, layout, path, body, tenant) VALUES (?,?,?,?,?,?)",
                       (ds.id, time.time(), ds.layout, path, ds.SerializeToString(), tenant))

    def get_dataset(self, ds_id: str, *, tenant: str) -> tuple[datasets_pb2.Dataset, str] | None:
        with self._lock:
            row = self._db.execute("SELECT body, path, tenant FROM datasets WHERE id=? AND tenant=?",
                                   (ds_id, tenant)).fetchone()
        return (_owned(datasets_pb2.Dataset.FromString(row[0]), row[2]), row[1]) if row else None

    def _owned_rows(self, message: type[Message], sql: str, args: tuple[object, ...]) -> list[Message]:
        """The (body, tenant) rows sql selects, as messages that name their tenant."""
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_owned(message.FromString(r[0]), r[1]) for r in rows]

    def list_datasets(self, layout: int, offset: int, limit: int, *, tenant: str) -> list[datasets_pb2.Dataset]:
        return self._owned_rows(datasets_pb2.Dataset, "SELECT body, tenant FROM datasets WHERE tenant=? AND "
                                "(?=0 OR layout=?) ORDER BY created DESC, id LIMIT ? OFFSET ?",
                                (tenant, layout, layout, limit, offset))

    def delete_dataset(self, ds_id: str, *, tenant: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM datasets WHERE id=? AND tenant=?", (ds_id, tenant))

    # jobs
    def put_job(self, job: training_pb2.Job, request_id: str | None, spec: JobSpec | None = None) -> training_pb2.Job:
        """Insert a job with the spec it runs; with a request_id the tenant already used, return that job instead."""
        tenant = job.tenant or DEFAULT_TENANT
        with self._tx() as db:
            if request_id:
                row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant=? AND request_id=?",
                                 (tenant, request_id)).fetchone()
                if row:
                    return _job(db, row)
            if self.max_active_jobs > 0:
                (active,) = db.execute("SELECT COUNT(*) FROM jobs WHERE tenant=? AND state IN (?,?)",
                                       (tenant, *ACTIVE)).fetchone()
                if active >= self.max_active_jobs:
                    raise ResourceExhausted(f"tenant {tenant!r} already has {active} queued or running job(s): "
                                            f"max_concurrent_jobs_per_tenant={self.max_active_jobs}; wait for one "
                                            "to finish or cancel one")
            db.execute("INSERT INTO jobs (id, created, state, model_name, request_id, body, tenant, spec) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (job.id, time.time(), job.state, job.request.model_name, request_id or None,
                        job.SerializeToString(), tenant, spec.to_json() if spec is not None else None))
            return _job(db, db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job.id,)).fetchone())

    def update_job(self, job: training_pb2.Job) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET state=?, body=? WHERE id=?", (job.state, job.SerializeToString(), job.id))

    def get_job(self, job_id: str) -> training_pb2.Job | None:
        """Any tenant's job: the job manager's own view. Servicers use for_tenant(t).get_job."""
        with self._lock:
            row = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
            return _job(self._db, row) if row else None

    def job_spec(self, job_id: str) -> JobSpec | None:
        """The spec the job was created with; None for a job stored before specs were (schema < 3)."""
        with self._lock:
            row = self._db.execute("SELECT spec FROM jobs WHERE id=?", (job_id,)).fetchone()
        return JobSpec.from_json(row[0]) if row and row[0] else None

    def get_tenant_job(self, job_id: str, *, tenant: str) -> training_pb2.Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=? AND tenant=?",
                                   (job_id, tenant)).fetchone()
            return _job(self._db, row) if row else None

    def list_jobs(self, states: list[int], model_name: str, offset: int, limit: int, *,
                  tenant: str) -> list[training_pb2.Job]:
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant=? AND (?='' OR model_name=?)"
        args: list[object] = [tenant, model_name, model_name]
        states = sorted(set(states))  # a request may repeat a state thousands of times
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += states
        sql += " ORDER BY created DESC, id LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit, offset]).fetchall()
            return [_job(self._db, r) for r in rows]

    def unfinished_jobs(self) -> list[training_pb2.Job]:
        """Jobs a previous run of the server left QUEUED or RUNNING, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?,?) ORDER BY created, id",
                                    ACTIVE).fetchall()
            return [_job(self._db, r) for r in rows]

    # events
    def append_event(self, event: training_pb2.JobEvent) -> training_pb2.JobEvent:
        """Number the event (1, 2, ... per job) and store it."""
        with self._tx() as db:
            (last,) = db.execute("SELECT COALESCE(MAX(seq),0) FROM events WHERE job_id=?",
                                 (event.job_id,)).fetchone()
            event.sequence = last + 1
            db.execute("INSERT INTO events VALUES (?,?,?)", (event.job_id, event.sequence,
                                                             event.SerializeToString()))
        return event

    def events(self, job_id: str, from_seq: int) -> list[training_pb2.JobEvent]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM events WHERE job_id=? AND seq>=? ORDER BY seq",
                                    (job_id, from_seq)).fetchall()
        return [training_pb2.JobEvent.FromString(r[0]) for r in rows]

    # models
    def next_model_version(self, name: str, *, tenant: str) -> int:
        with self._lock:
            (last,) = self._db.execute("SELECT COALESCE(MAX(version),0) FROM models WHERE tenant=? AND name=?",
                                       (tenant, name)).fetchone()
        return last + 1

    def put_model(self, model: models_pb2.Model, path: str) -> None:
        tenant = model.tenant or DEFAULT_TENANT
        with self._tx() as db:
            db.execute("INSERT INTO models (name, version, path, body, tenant) VALUES (?,?,?,?,?)",
                       (model.ref.name, model.ref.version, path, model.SerializeToString(), tenant))
        self._models_changed()

    def get_model(self, name: str, version: int, *, tenant: str) -> tuple[models_pb2.Model, str] | None:
        """Version 0 resolves to the latest version of the name."""
        sql = ("SELECT body, path, tenant FROM models WHERE tenant=? AND name=? ORDER BY version DESC LIMIT 1"
               if version == 0 else "SELECT body, path, tenant FROM models WHERE tenant=? AND name=? AND version=?")
        args = (tenant, name) if version == 0 else (tenant, name, version)
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return (_owned(models_pb2.Model.FromString(row[0]), row[2]), row[1]) if row else None

    def cached_model(self, name: str, version: int, *, tenant: str) -> tuple[models_pb2.Model, str] | None:
        """get_model's answer when it can be had without I/O: never here (RemoteStore keeps lookups in memory)."""
        return None

    def list_models(self, name: str, offset: int, limit: int, *, tenant: str) -> list[models_pb2.Model]:
        return self._owned_rows(models_pb2.Model, "SELECT body, tenant FROM models WHERE tenant=? AND "
                                "(?='' OR name=?) ORDER BY name, version DESC LIMIT ? OFFSET ?",
                                (tenant, name, name, limit, offset))

    def delete_models(self, name: str, version: int, *, tenant: str) -> list[tuple[int, str]]:
        """Delete one version (or all with version 0); returns (version, path) of each deleted row."""
        where = "tenant=? AND name=?" + ("" if version == 0 else " AND version=?")
        args = (tenant, name) if version == 0 else (tenant, name, version)
        with self._tx() as db:
            rows = db.execute(f"SELECT version, path FROM models WHERE {where}", args).fetchall()
            db.execute(f"DELETE FROM models WHERE {where}", args)
        self._models_changed()
        return [(int(v), p) for v, p in rows]

    # the version 1 -> 2 (-> 3) migration of the model files (driven by the registry)
    def model_paths(self) -> list[tuple[str, str, int, str]]:
        """(tenant, name, version, path) of every model."""
        with self._lock:
            rows = self._db.execute("SELECT tenant, name, version, path FROM models").fetchall()
        return [(t, n, int(v), p) for t, n, v, p in rows]

    def finish_layout_migration(self, moved: list[tuple[str, str, int, str]]) -> None:
        """Record the models' new paths and the schema version in one transaction (the spec column is there
        since the store opened)."""
        with self._tx() as db:
            for tenant, name, version, path in moved:
                db.execute("UPDATE models SET path=? WHERE tenant=? AND name=? AND version=?",
                           (path, tenant, name, version))
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._models_changed()


class TenantStore:
    """The store as one tenant sees it: the pre-tenancy signatures, every read filtered by the tenant.

    Handed to code that resolves ids on a caller's behalf (job specs), so that it cannot reach another
    tenant's dataset or model however it was written.
    """

    def __init__(self, store: Store, tenant: str) -> None:
        self._store = store
        self.tenant = tenant

    def get_dataset(self, ds_id: str) -> tuple[datasets_pb2.Dataset, str] | None:
        return self._store.get_dataset(ds_id, tenant=self.tenant)

    def list_datasets(self, layout: int, offset: int, limit: int) -> list[datasets_pb2.Dataset]:
        return self._store.list_datasets(layout, offset, limit, tenant=self.tenant)

    def get_job(self, job_id: str) -> training_pb2.Job | None:
        return self._store.get_tenant_job(job_id, tenant=self.tenant)

    def list_jobs(self, states: list[int], model_name: str, offset: int, limit: int) -> list[training_pb2.Job]:
        return self._store.list_jobs(states, model_name, offset, limit, tenant=self.tenant)

    def get_model(self, name: str, version: int) -> tuple[models_pb2.Model, str] | None:
        return self._store.get_model(name, version, tenant=self.tenant)

    def list_models(self, name: str, offset: int, limit: int) -> list[models_pb2.Model]:
        return self._store.list_models(name, offset, limit, tenant=self.tenant)
