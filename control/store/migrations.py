"""The job store's schema on each database, and the steps that bring an older one up to date.

Versions (the same numbers on every database): 0 = before tenancy (no tenant columns); 1 = tenant columns,
model files still at models/<name>/<version>; 2 = model files at models/<tenant>/<name>/<version>; 3 = each job
keeps the JobSpec it was created with (the spec column, JSON), so a re-queue never rebuilds it.

SQLite keeps its version in PRAGMA user_version and still opens data directories of every older version
(sqlite.py). A PostgreSQL store starts at version 3 (no data directory ever held an older one there); a later
schema change is a new (version, statements) entry of POSTGRES_STEPS, applied once in one transaction.
"""

from __future__ import annotations

SCHEMA_VERSION = 3
LAYOUT_VERSION = 2
"""The first version with model files at models/<tenant>/<name>/<version>: the registry moves older trees."""

SQLITE_TABLES = """
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
# SQLite version 0 -> 1: the UNIQUE/PRIMARY KEY constraints change, so jobs and models are rebuilt (SQLite cannot
# alter constraints); datasets only gain a column. One transaction: an interrupted migration leaves version 0.
SQLITE_0_TO_1 = [
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

# PostgreSQL: "created" is seconds since the epoch (the same float SQLite keeps), blobs are bytea.
POSTGRES_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
POSTGRES_STEPS: list[tuple[int, list[str]]] = [
    (3, [
        """CREATE TABLE datasets (
  id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, layout INTEGER NOT NULL, path TEXT NOT NULL,
  body BYTEA NOT NULL, tenant TEXT NOT NULL DEFAULT 'default')""",
        """CREATE TABLE jobs (
  id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, state INTEGER NOT NULL, model_name TEXT NOT NULL,
  request_id TEXT, body BYTEA NOT NULL, tenant TEXT NOT NULL DEFAULT 'default', spec TEXT,
  UNIQUE (tenant, request_id))""",
        """CREATE TABLE events (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, body BYTEA NOT NULL, PRIMARY KEY (job_id, seq))""",
        """CREATE TABLE models (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, body BYTEA NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default', PRIMARY KEY (tenant, name, version))""",
        *(s.strip() for s in INDEXES.split(";") if s.strip()),
    ]),
]
