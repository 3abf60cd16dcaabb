"""The job store: datasets, jobs, job events and the model registry's index, on one of two databases.

`open_store` picks it from one setting (the front door's --job-store, FINESERVE_JOB_STORE): empty = the
embedded default, a SQLite file in the data directory (sqlite.py); a postgresql:// URL = PostgreSQL, for
clusters (postgres.py). Both run the same queries (core.py) and keep the same schema versions
(migrations.py).
"""

from __future__ import annotations

from pathlib import Path

from control.store.core import DEFAULT_TENANT, Database, Store, TenantStore, now_ts
from control.store.migrations import LAYOUT_VERSION, SCHEMA_VERSION, SQLITE_TABLES
from control.store.postgres import PostgresDatabase, is_postgres, parses

SQLITE_FILE = "fineserve.db"

__all__ = ["DEFAULT_TENANT", "LAYOUT_VERSION", "SCHEMA_VERSION", "SQLITE_FILE", "SQLITE_TABLES", "Database",
           "Store", "TenantStore", "check_job_store", "now_ts", "open_store"]


def check_job_store(target: str) -> str:
    """Why target cannot name a job store, or "" when it can (the value is not repeated: it may hold a
    password)."""
    if target and not is_postgres(target):
        return ("--job-store (FINESERVE_JOB_STORE) must be empty (SQLite in the data directory) or a "
                "postgresql://user:password@host:port/database URL")
    if target and not parses(target):  # libpq's own message would quote the part it could not read
        return ("--job-store (FINESERVE_JOB_STORE) does not parse as a PostgreSQL URL: "
                "postgresql://user:password@host:port/database?param=value with libpq's parameter names, and "
                "special characters of the password percent-encoded (%40 for @, %20 for a space)")
    return ""


def open_store(target: str, data_dir: Path, max_active_jobs: int = 0) -> Store:
    """The store the setting names (see the module docstring); a database that is still starting is waited for."""
    if problem := check_job_store(target):
        raise ValueError(problem)
    db = PostgresDatabase(target) if target else data_dir / SQLITE_FILE
    return Store(db, max_active_jobs=max_active_jobs)
