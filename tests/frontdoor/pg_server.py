"""A real PostgreSQL server for the job store's tests (conftest.py's `postgres` fixture).

A private cluster (initdb in a temporary folder, a free loopback port, a password), started once
per session with Debian's `postgresql` package (`.ci/run` installs it). initdb refuses to run as root, so as
root it runs as the `postgres` user the package creates. Missing PostgreSQL fails under CI, skips elsewhere.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

PG_BINARIES = "/usr/lib/postgresql/*/bin"


def needed(message: str) -> None:
    """What these tests need is missing: a failure under CI (CI=true), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def find_bindir() -> Path | None:
    found = sorted(Path("/").glob(PG_BINARIES.lstrip("/")), key=lambda p: int(p.parent.name))
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in root (a folder of its own), on 127.0.0.1:port, password-protected."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir, self.root = bindir, root
        self.data, self.port = root / "data", _free_port()
        self.password = secrets.token_urlsafe(12)
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        pwfile = root / "pw"
        pwfile.write_text(self.password)
        if self._as_user:
            shutil.chown(pwfile, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync")

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        done = subprocess.run([*self._as_user, str(self.bindir / tool), *args], capture_output=True, text=True)
        if check and done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   "-c fsync=off -c shared_buffers=16MB -c max_connections=40")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended (their clients see the connection lost)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def ensure_running(self) -> None:
        """Started again after a test that stopped it failed midway (pg_ctl status: 3 = not running)."""
        status = subprocess.run([*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
                                capture_output=True)
        if status.returncode == 3:
            self.start()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)
