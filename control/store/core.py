"""The store of datasets, jobs, job events and the model registry, the same on every database.

Rows keep the API's protobuf messages as blobs next to the columns the queries filter on, so what a caller
reads after a restart is byte for byte what it read before.

Every dataset, job and model belongs to a tenant (a column, and the message's output-only `tenant` field).
Reads on behalf of a caller take the tenant and filter by it in SQL, so another tenant's rows are simply not
found. Job-by-id reads without a tenant (get_job, update_job, events) are for the job manager's own
bookkeeping; servicers use the tenant-scoped view (for_tenant) instead.

The SQL here is what SQLite and PostgreSQL both accept ("?" placeholders; the PostgreSQL side rewrites them);
a Database (sqlite.py, postgres.py) runs each method as one short transaction, and may run it again after a
lost connection (Tx.retried): every write is written so that running it again after a commit whose answer was
lost changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from control.store.migrations import SCHEMA_VERSION
from control.store.sqlite import SQLiteDatabase
from fineserve.v1 import datasets_pb2, models_pb2, training_pb2
from fineserve_common.errors import ResourceExhausted
from fineserve_common.spec import JobSpec

DEFAULT_TENANT = "default"
"""The tenant of rows written before tenancy and of every caller of an open (keyless) service."""
ACTIVE = (training_pb2.QUEUED, training_pb2.RUNNING)
JOB_COLUMNS = "body, tenant, created, id"
Message = TypeVar("Message", bound=ProtoMessage)
T = TypeVar("T")


class Rows(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One transaction (or, for reads, one connection) of a Database."""

    retried: bool
    """True when an earlier run of the same method lost its connection: its commit may have happened."""

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows: ...
    def set_schema_version(self, version: int) -> None: ...


class Database(Protocol):
    def read(self, fn: Callable[[Tx], T]) -> T: ...
    def write(self, fn: Callable[[Tx], T]) -> T:
        """fn in one transaction that no other writer interleaves with (the store's checks rely on it)."""
        ...
    def schema_version(self) -> int: ...
    def close(self) -> None: ...


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def _owned(message: Any, tenant: str) -> Any:
    """Rows written before tenancy have no tenant in their blob: fill it from the column."""
    if not message.tenant:
        message.tenant = tenant
    return message


def _job(tx: Tx, row: Sequence[Any]) -> training_pb2.Job:
    """A job row (body, tenant, created, id) with its queue position filled in (QUEUED jobs only)."""
    job = _owned(training_pb2.Job.FromString(bytes(row[0])), row[1])
    job.queue_position = 0
    if job.state == training_pb2.QUEUED:
        (ahead,) = tx.execute("SELECT COUNT(*) FROM jobs WHERE state=? AND (created<? OR (created=? AND id<?))",
                              (training_pb2.QUEUED, row[2], row[2], row[3])).fetchone()
        job.queue_position = int(ahead) + 1
    return job


def _on_retry(tx: Tx) -> str:
    """An insert's conflict clause: a retried insert may find its own row, committed by the lost attempt."""
    return " ON CONFLICT DO NOTHING" if tx.retried else ""


class Store:
    """Thread-safe access to the job store; every method is one short transaction.

    db: a Database, or the path of a SQLite file (the embedded default); see open_store for the setting.
    max_active_jobs: QUEUED+RUNNING jobs one tenant may have (0 = no limit); put_job refuses more with
    RESOURCE_EXHAUSTED, checked in the same transaction as the insert so concurrent creations cannot overshoot.
    on_models_changed, when set, is called after each committed change to the models table (the coordinator
    tells front doors to drop their cached model lookups).
    """

    on_models_changed: Callable[[], None] | None = None

    def __init__(self, db: Database | Path, max_active_jobs: int = 0) -> None:
        self._db = SQLiteDatabase(db) if isinstance(db, Path) else db
        self.max_active_jobs = max_active_jobs

    @property
    def schema_version(self) -> int:
        return self._db.schema_version()

    def close(self) -> None:
        self._db.close()

    def for_tenant(self, tenant: str) -> TenantStore:
        return TenantStore(self, tenant)

    def _models_changed(self) -> None:
        if self.on_models_changed is not None:
            self.on_models_changed()

    # datasets
    def put_dataset(self, ds: datasets_pb2.Dataset, path: str) -> None:
        tenant = ds.tenant or DEFAULT_TENANT
        self._db.write(lambda tx: tx.execute(
            f"INSERT INTO datasets (id, created, layout, path, body, tenant) VALUES (?,?,?,?,?,?){_on_retry(tx)}",
            (ds.id, time.time(), ds.layout, path, ds.SerializeToString(), tenant)))

    def get_dataset(self, ds_id: str, *, tenant: str) -> tuple[datasets_pb2.Dataset, str] | None:
        row = self._db.read(lambda tx: tx.execute("SELECT body, path, tenant FROM datasets WHERE id=? AND tenant=?",
                                                  (ds_id, tenant)).fetchone())
        return (_owned(datasets_pb2.Dataset.FromString(bytes(row[0])), row[2]), row[1]) if row else None

    def _owned_rows(self, message: type[Message], sql: str, args: tuple[object, ...]) -> list[Message]:
        """The (body, tenant) rows sql selects, as messages that name their tenant."""
        rows = self._db.read(lambda tx: tx.execute(sql, args).fetchall())
        return [_owned(message.FromString(bytes(r[0])), r[1]) for r in rows]

    def list_datasets(self, layout: int, offset: int, limit: int, *, tenant: str) -> list[datasets_pb2.Dataset]:
        return self._owned_rows(datasets_pb2.Dataset, "SELECT body, tenant FROM datasets WHERE tenant=? AND "
                                "(?=0 OR layout=?) ORDER BY created DESC, id LIMIT ? OFFSET ?",
                                (tenant, layout, layout, limit, offset))

    def delete_dataset(self, ds_id: str, *, tenant: str) -> None:
        self._db.write(lambda tx: tx.execute("DELETE FROM datasets WHERE id=? AND tenant=?", (ds_id, tenant)))

    # jobs
    def put_job(self, job: training_pb2.Job, request_id: str | None, spec: JobSpec | None = None) -> training_pb2.Job:
        """Insert a job with the spec it runs; with a request_id the tenant already used, return that job instead."""
        tenant = job.tenant or DEFAULT_TENANT

        def put(tx: Tx) -> training_pb2.Job:
            if tx.retried and (row := tx.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job.id,)).fetchone()):
                return _job(tx, row)  # the lost attempt's commit: its job counts in the tenant's active ones now
            if request_id:
                row = tx.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant=? AND request_id=?",
                                 (tenant, request_id)).fetchone()
                if row:
                    return _job(tx, row)
            if self.max_active_jobs > 0:
                (active,) = tx.execute("SELECT COUNT(*) FROM jobs WHERE tenant=? AND state IN (?,?)",
                                       (tenant, *ACTIVE)).fetchone()
                if active >= self.max_active_jobs:
                    raise ResourceExhausted(f"tenant {tenant!r} already has {active} queued or running job(s): "
                                            f"max_concurrent_jobs_per_tenant={self.max_active_jobs}; wait for one "
                                            "to finish or cancel one")
            tx.execute("INSERT INTO jobs (id, created, state, model_name, request_id, body, tenant, spec) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (job.id, time.time(), job.state, job.request.model_name, request_id or None,
                        job.SerializeToString(), tenant, spec.to_json() if spec is not None else None))
            return _job(tx, tx.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job.id,)).fetchone())

        return self._db.write(put)

    def update_job(self, job: training_pb2.Job) -> None:
        self._db.write(lambda tx: tx.execute("UPDATE jobs SET state=?, body=? WHERE id=?",
                                             (job.state, job.SerializeToString(), job.id)))

    def _one_job(self, sql: str, args: tuple[object, ...]) -> training_pb2.Job | None:
        def one(tx: Tx) -> training_pb2.Job | None:
            row = tx.execute(sql, args).fetchone()
            return _job(tx, row) if row else None

        return self._db.read(one)

    def _jobs(self, sql: str, args: Sequence[object]) -> list[training_pb2.Job]:
        return self._db.read(lambda tx: [_job(tx, r) for r in tx.execute(sql, args).fetchall()])

    def get_job(self, job_id: str) -> training_pb2.Job | None:
        """Any tenant's job: the job manager's own view. Servicers use for_tenant(t).get_job."""
        return self._one_job(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,))

    def job_spec(self, job_id: str) -> JobSpec | None:
        """The spec the job was created with; None for a job stored before specs were (schema < 3)."""
        row = self._db.read(lambda tx: tx.execute("SELECT spec FROM jobs WHERE id=?", (job_id,)).fetchone())
        return JobSpec.from_json(row[0]) if row and row[0] else None

    def get_tenant_job(self, job_id: str, *, tenant: str) -> training_pb2.Job | None:
        return self._one_job(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=? AND tenant=?", (job_id, tenant))

    def list_jobs(self, states: list[int], model_name: str, offset: int, limit: int, *,
                  tenant: str) -> list[training_pb2.Job]:
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant=? AND (?='' OR model_name=?)"
        args: list[object] = [tenant, model_name, model_name]
        states = sorted(set(states))  # a request may repeat a state thousands of times
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += states
        sql += " ORDER BY created DESC, id LIMIT ? OFFSET ?"
        return self._jobs(sql, [*args, limit, offset])

    def unfinished_jobs(self) -> list[training_pb2.Job]:
        """Jobs a previous run of the server left QUEUED or RUNNING, oldest first."""
        return self._jobs(f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?,?) ORDER BY created, id", ACTIVE)

    # events
    def append_event(self, event: training_pb2.JobEvent) -> training_pb2.JobEvent:
        """Number the event (1, 2, ... per job) and store it."""

        def append(tx: Tx) -> None:
            (last,) = tx.execute("SELECT COALESCE(MAX(seq),0) FROM events WHERE job_id=?",
                                 (event.job_id,)).fetchone()
            if tx.retried and last > 0:  # the lost attempt's commit stored this very event (its time included)?
                event.sequence = last
                (stored,) = tx.execute("SELECT body FROM events WHERE job_id=? AND seq=?",
                                       (event.job_id, last)).fetchone()
                if bytes(stored) == event.SerializeToString():
                    return
            event.sequence = last + 1
            tx.execute("INSERT INTO events (job_id, seq, body) VALUES (?,?,?)",
                       (event.job_id, event.sequence, event.SerializeToString()))

        self._db.write(append)
        return event

    def events(self, job_id: str, from_seq: int) -> list[training_pb2.JobEvent]:
        rows = self._db.read(lambda tx: tx.execute("SELECT body FROM events WHERE job_id=? AND seq>=? ORDER BY seq",
                                                   (job_id, from_seq)).fetchall())
        return [training_pb2.JobEvent.FromString(bytes(r[0])) for r in rows]

    # models
    def next_model_version(self, name: str, *, tenant: str) -> int:
        (last,) = self._db.read(lambda tx: tx.execute(
            "SELECT COALESCE(MAX(version),0) FROM models WHERE tenant=? AND name=?", (tenant, name)).fetchone())
        return int(last) + 1

    def put_model(self, model: models_pb2.Model, path: str) -> None:
        tenant = model.tenant or DEFAULT_TENANT
        self._db.write(lambda tx: tx.execute(
            f"INSERT INTO models (name, version, path, body, tenant) VALUES (?,?,?,?,?){_on_retry(tx)}",
            (model.ref.name, model.ref.version, path, model.SerializeToString(), tenant)))
        self._models_changed()

    def get_model(self, name: str, version: int, *, tenant: str) -> tuple[models_pb2.Model, str] | None:
        """Version 0 resolves to the latest version of the name."""
        sql = ("SELECT body, path, tenant FROM models WHERE tenant=? AND name=? ORDER BY version DESC LIMIT 1"
               if version == 0 else "SELECT body, path, tenant FROM models WHERE tenant=? AND name=? AND version=?")
        args = (tenant, name) if version == 0 else (tenant, name, version)
        row = self._db.read(lambda tx: tx.execute(sql, args).fetchone())
        return (_owned(models_pb2.Model.FromString(bytes(row[0])), row[2]), row[1]) if row else None

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
        seen: list[tuple[int, str]] = []  # what a lost attempt deleted: its files must still go

        def delete(tx: Tx) -> list[tuple[int, str]]:
            rows = [(int(v), p) for v, p in tx.execute(f"SELECT version, path FROM models WHERE {where}",
                                                       args).fetchall()]
            tx.execute(f"DELETE FROM models WHERE {where}", args)
            seen[:] = rows or seen
            return seen

        deleted = self._db.write(delete)
        self._models_changed()
        return deleted

    # the version 1 -> 2 (-> 3) migration of the model files (driven by the registry)
    def model_paths(self) -> list[tuple[str, str, int, str]]:
        """(tenant, name, version, path) of every model."""
        rows = self._db.read(lambda tx: tx.execute("SELECT tenant, name, version, path FROM models").fetchall())
        return [(t, n, int(v), p) for t, n, v, p in rows]

    def finish_layout_migration(self, moved: list[tuple[str, str, int, str]]) -> None:
        """Record the models' new paths and the schema version in one transaction (the spec column is there
        since the store opened)."""

        def finish(tx: Tx) -> None:
            for tenant, name, version, path in moved:
                tx.execute("UPDATE models SET path=? WHERE tenant=? AND name=? AND version=?",
                           (path, tenant, name, version))
            tx.set_schema_version(SCHEMA_VERSION)

        self._db.write(finish)
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
