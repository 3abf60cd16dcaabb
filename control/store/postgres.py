"""PostgreSQL as the job store of a cluster, where the coordinator may be restarted on any node and a SQLite
file would sit on a network volume (which SQLite's WAL mode does not support).

One connection, used by one call at a time: the coordinator is the store's one user, as with SQLite. Every
write first takes a transaction-scoped advisory lock, so writers never interleave, even from two processes (what
BEGIN IMMEDIATE gives SQLite): put_job's count-then-insert cannot overshoot, append_event numbers without gaps.

A lost connection (a database restart or failover, a network cut) is survived: the call reconnects, pausing a
little longer each time, and runs its transaction again, for up to RECONNECT_S; the store's writes are written
so that running one again after a commit whose answer was lost changes nothing (core.py). Past that the call
fails with UNAVAILABLE. TCP keepalives turn a silent network cut into a lost connection instead of a hang.

The URL may carry a password: it is never logged nor put in an error (where() names the server without it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from control.store.migrations import POSTGRES_STEPS, POSTGRES_VERSION_TABLE, SCHEMA_VERSION
from fineserve_common.errors import FailedPrecondition, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
SCHEMES = ("postgresql://", "postgres://")
RECONNECT_S = 120.0
"""How long a call waits for the database to come back before it fails (a restart takes seconds; a failover
or a rescheduled database pod, up to a minute or two)."""
FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0
WRITE_LOCK = 0x66696E65  # the advisory lock key every writer takes ("fine")
CONNECT_OPTIONS: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                                   "keepalives_interval": 10, "keepalives_count": 3,
                                   "application_name": "fineserve-coordinator"}


def is_postgres(target: str) -> bool:
    return target.startswith(SCHEMES)


def parses(url: str) -> bool:
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return False
    return True


def where(url: str) -> str:
    """The database a URL names, for messages: user@host:port/dbname, never the password."""
    if not parses(url):
        return "(a URL that does not parse)"
    info = conninfo_to_dict(url)
    return f"{info.get('user', '')}@{info.get('host', '')}:{info.get('port', '5432')}/{info.get('dbname', '')}"


class PostgresTx:
    """A connection as the store's Tx: "?" placeholders become psycopg's "%s"."""

    def __init__(self, conn: psycopg.Connection[Any], retried: bool) -> None:
        self._conn = conn
        self.retried = retried

    def execute(self, sql: str, args: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(sql.replace("?", "%s"), args)

    def set_schema_version(self, version: int) -> None:
        self._conn.execute("DELETE FROM schema_version")
        self._conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))


class PostgresDatabase:
    def __init__(self, url: str, reconnect_s: float = RECONNECT_S) -> None:
        self._url = url
        self.where = where(url)
        self._reconnect_s = reconnect_s
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self.write(self._migrate)  # waits for a database that is still starting, as any call does
        log.info("job store: PostgreSQL %s, schema version %d", self.where, SCHEMA_VERSION)

    @staticmethod
    def _migrate(tx: PostgresTx) -> None:
        """Bring the schema to SCHEMA_VERSION in one transaction (two coordinators starting at once: the advisory
        lock lets one migrate and the other find it done)."""
        tx.execute(POSTGRES_VERSION_TABLE)
        row = tx.execute("SELECT version FROM schema_version").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise FailedPrecondition(f"the job store's schema is version {version}, newer than this fineserve's "
                                     f"({SCHEMA_VERSION}): run the newer fineserve against it")
        for step, statements in POSTGRES_STEPS:
            if step > version:
                for sql in statements:
                    tx.execute(sql)
        if version < SCHEMA_VERSION:
            tx.set_schema_version(SCHEMA_VERSION)

    def schema_version(self) -> int:
        return int(self.read(lambda tx: tx.execute("SELECT version FROM schema_version").fetchone()[0]))

    def read(self, fn: Callable[[PostgresTx], T]) -> T:
        return self._run(fn, write=False)

    def write(self, fn: Callable[[PostgresTx], T]) -> T:
        return self._run(fn, write=True)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True, **CONNECT_OPTIONS)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, fn: Callable[[PostgresTx], T], write: bool) -> T:
        with self._lock:
            lost_at: float | None = None
            pause = FIRST_PAUSE_S
            while True:
                try:
                    conn = self._connection()
                    tx = PostgresTx(conn, retried=lost_at is not None)
                    if write:
                        with conn.transaction():
                            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                            result = fn(tx)
                    else:
                        result = fn(tx)
                except psycopg.OperationalError as e:
                    self._drop()
                    now = time.monotonic()
                    if lost_at is None:
                        lost_at = now
                        log.warning("job store %s: connection lost (%s); reconnecting", self.where, _line(e))
                    if now - lost_at >= self._reconnect_s:
                        raise Unavailable(f"the job store (PostgreSQL {self.where}) has been unreachable for "
                                          f"{now - lost_at:.0f} s: {_line(e)}") from e
                    time.sleep(pause)
                    pause = min(pause * 2, MAX_PAUSE_S)
                    continue
                if lost_at is not None:
                    log.warning("job store %s: connection back after %.1f s", self.where, time.monotonic() - lost_at)
                return result

    def close(self) -> None:
        with self._lock:
            self._drop()


def _line(error: Exception) -> str:
    """An error's first line (libpq's messages go on with hints over several)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
