"""SQLite store of datasets, jobs, job events and the model registry (one file, WAL mode).

Rows keep the API's protobuf messages as blobs next to the columns the queries filter on, so what a caller
reads after a restart is byte for byte what it read before.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from fineserve.v1 import datasets_pb2, models_pb2, training_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, created REAL NOT NULL, layout INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, created REAL NOT NULL, state INTEGER NOT NULL, model_name TEXT NOT NULL,
  request_id TEXT UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS models (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (name, version));
"""


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class Store:
    """Thread-safe access to the SQLite file; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

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

    # datasets
    def put_dataset(self, ds: datasets_pb2.Dataset, path: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO datasets VALUES (?,?,?,?,?)",
                       (ds.id, time.time(), ds.layout, path, ds.SerializeToString()))

    def get_dataset(self, ds_id: str) -> tuple[datasets_pb2.Dataset, str] | None:
        with self._lock:
            row = self._db.execute("SELECT body, path FROM datasets WHERE id=?", (ds_id,)).fetchone()
        return (datasets_pb2.Dataset.FromString(row[0]), row[1]) if row else None

    def list_datasets(self, layout: int, offset: int, limit: int) -> list[datasets_pb2.Dataset]:
        sql = "SELECT body FROM datasets WHERE (?=0 OR layout=?) ORDER BY created DESC, id LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, (layout, layout, limit, offset)).fetchall()
        return [datasets_pb2.Dataset.FromString(r[0]) for r in rows]

    def delete_dataset(self, ds_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM datasets WHERE id=?", (ds_id,))

    # jobs
    def put_job(self, job: training_pb2.Job, request_id: str | None) -> training_pb2.Job:
        """Insert a job; with a request_id already stored, return that job instead."""
        with self._tx() as db:
            if request_id:
                row = db.execute("SELECT body FROM jobs WHERE request_id=?", (request_id,)).fetchone()
                if row:
                    return training_pb2.Job.FromString(row[0])
            db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?)",
                       (job.id, time.time(), job.state, job.request.model_name, request_id or None,
                        job.SerializeToString()))
        return job

    def update_job(self, job: training_pb2.Job) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET state=?, body=? WHERE id=?", (job.state, job.SerializeToString(), job.id))

    def get_job(self, job_id: str) -> training_pb2.Job | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id=?", (job_id,)).fetchone()
        return training_pb2.Job.FromString(row[0]) if row else None

    def list_jobs(self, states: list[int], model_name: str, offset: int, limit: int) -> list[training_pb2.Job]:
        sql = "SELECT body FROM jobs WHERE (?='' OR model_name=?)"
        args: list[object] = [model_name, model_name]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += states
        sql += " ORDER BY created DESC, id LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit, offset]).fetchall()
        return [training_pb2.Job.FromString(r[0]) for r in rows]

    def unfinished_jobs(self) -> list[training_pb2.Job]:
        """Jobs a previous run of the server left QUEUED or RUNNING, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM jobs WHERE state IN (?,?) ORDER BY created",
                                    (training_pb2.QUEUED, training_pb2.RUNNING)).fetchall()
        return [training_pb2.Job.FromString(r[0]) for r in rows]

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
    def next_model_version(self, name: str) -> int:
        with self._lock:
            (last,) = self._db.execute("SELECT COALESCE(MAX(version),0) FROM models WHERE name=?",
                                       (name,)).fetchone()
        return last + 1

    def put_model(self, model: models_pb2.Model, path: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO models VALUES (?,?,?,?)",
                       (model.ref.name, model.ref.version, path, model.SerializeToString()))

    def get_model(self, name: str, version: int) -> tuple[models_pb2.Model, str] | None:
        """Version 0 resolves to the latest version of the name."""
        sql = ("SELECT body, path FROM models WHERE name=? ORDER BY version DESC LIMIT 1" if version == 0
               else "SELECT body, path FROM models WHERE name=? AND version=?")
        args = (name,) if version == 0 else (name, version)
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return (models_pb2.Model.FromString(row[0]), row[1]) if row else None

    def list_models(self, name: str, offset: int, limit: int) -> list[models_pb2.Model]:
        sql = "SELECT body FROM models WHERE (?='' OR name=?) ORDER BY name, version DESC LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, (name, name, limit, offset)).fetchall()
        return [models_pb2.Model.FromString(r[0]) for r in rows]

    def delete_models(self, name: str, version: int) -> list[tuple[int, str]]:
        """Delete one version (or all with version 0); returns (version, path) of each deleted row."""
        with self._tx() as db:
            sql = "SELECT version, path FROM models WHERE name=?" + ("" if version == 0 else " AND version=?")
            args = (name,) if version == 0 else (name, version)
            rows = db.execute(sql, args).fetchall()
            db.execute("DELETE FROM models WHERE name=?" + ("" if version == 0 else " AND version=?"), args)
        return [(int(v), p) for v, p in rows]
