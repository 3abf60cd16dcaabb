"""The job store's fixtures: a real PostgreSQL server (pg_server.py) and a store on each database."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, find_bindir, needed

from control.store import Store
from control.store.postgres import PostgresDatabase


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        needed("PostgreSQL not found (apt-get install -y postgresql; .ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="fineserve-pg-"))
    server = PostgresServer(bindir, root)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server._run("pg_ctl", "-D", str(server.data), "-m", "immediate", "stop", check=False)  # stopped already?
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def open_test_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Store]:
    """Opens a Store on one database per test (each call opens it again: a restart), on SQLite and on
    PostgreSQL."""
    if request.param == "sqlite":
        return lambda **kw: Store(tmp_path / "f.db", **kw)
    url = request.getfixturevalue("postgres").new_database()
    return lambda **kw: Store(PostgresDatabase(url), **kw)
