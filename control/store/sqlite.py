"""The job store's embedded default: one SQLite file in WAL mode, on a local disk (WAL does not work on a
network file system: clusters use PostgreSQL, postgres.py).

An older data directory is migrated in place on open (version 0 -> 1, the spec column) and by the registry (the
model files; see Registry.migrate_legacy_layout), which records version 3 at its end.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from control.store.migrations import INDEXES, LAYOUT_VERSION, SCHEMA_VERSION, SQLITE_0_TO_1, SQLITE_TABLES

T = TypeVar("T")


class SQLiteTx:
    """The connection as the store's Tx: one process, so a statement never needs running again."""

    retried = False

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    def set_schema_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version={int(version)}")


class SQLiteDatabase:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
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
            db.executescript(SQLITE_TABLES + INDEXES)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return
        db.executescript(SQLITE_TABLES)  # tables a previous version had not created yet
        db.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                columns = {r[1] for r in db.execute("PRAGMA table_info(datasets)")}
                for sql in SQLITE_0_TO_1 if "tenant" not in columns else []:
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

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def read(self, fn: Callable[[SQLiteTx], T]) -> T:
        with self._lock:
            return fn(SQLiteTx(self._db))

    def write(self, fn: Callable[[SQLiteTx], T]) -> T:
        """BEGIN IMMEDIATE takes the file's write lock first: no other writer interleaves."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(SQLiteTx(self._db))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def close(self) -> None:
        with self._lock:
            self._db.close()
