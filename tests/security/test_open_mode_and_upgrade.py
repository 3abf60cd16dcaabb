"""A front door with server-side TLS only (no client certificates), no API keys (open mode, said loudly at
start-up), started on the data directory of the version before tenancy: the old rows become tenant
"default", the model files move to models/default/, and the old models still serve the same answers."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.registry import MIGRATION_MARKER, Registry
from control.store import SCHEMA_VERSION, Store
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_client import Client, Unavailable
from fineserve_client.cli import main as cli_main
from harness.launcher import ServerProcess
from security.conftest import SecureServer, Trained
from security.helpers import Pki

# The schema of the first slice, before tenancy (git show e6ab9e1:service/store.py).
LEGACY_SCHEMA = """
CREATE TABLE datasets (
  id TEXT PRIMARY KEY, created REAL NOT NULL, layout INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY, created REAL NOT NULL, state INTEGER NOT NULL, model_name TEXT NOT NULL,
  request_id TEXT UNIQUE, body BLOB NOT NULL);
CREATE TABLE events (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE models (
  name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (name, version));
"""


def legacy_data_dir(data: Path, model_dir: Path | None, model_body: models_pb2.Model) -> None:
    """A data directory as the first slice left it: two models ("pets" and one named "default", which must
    not collide with the default tenant's folder), a dataset, a finished job with an idempotency key."""
    (data / "models").mkdir(parents=True)
    db = sqlite3.connect(data / "fineserve.db")
    db.executescript(LEGACY_SCHEMA)
    for name in ("pets", "default"):
        path = data / "models" / name / "1"
        if model_dir is not None:
            shutil.copytree(model_dir, path)
        else:
            path.mkdir(parents=True)
            (path / "card.json").write_text("{}")
        body = models_pb2.Model()
        body.CopyFrom(model_body)
        body.ClearField("tenant")
        body.ref.name = name
        db.execute("INSERT INTO models VALUES (?,?,?,?)", (name, 1, str(path), body.SerializeToString()))
    ds = datasets_pb2.Dataset(id="ds-0123456789abcdef", name="old", layout=datasets_pb2.IMAGE_FOLDERS,
                              source="upload")
    db.execute("INSERT INTO datasets VALUES (?,?,?,?,?)", (ds.id, 1.0, ds.layout, str(data / "datasets" / ds.id),
                                                           ds.SerializeToString()))
    job = training_pb2.Job(id="job-0123456789abcdef", state=training_pb2.SUCCEEDED, kind="fine_tune",
                           request=training_pb2.CreateFineTuneJobRequest(model_name="pets", request_id="old-key"))
    db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?)", (job.id, 1.0, job.state, "pets", "old-key",
                                                         job.SerializeToString()))
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def upgraded(secure: SecureServer, alice_model: Trained, pki: Pki,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("open")
    alice = secure.client("alice")
    model = alice.get_model("pets", 1).raw
    legacy_data_dir(base / "data", secure.proc.data_dir / "models" / "alice" / "pets" / "1", model)
    proc = ServerProcess(base / "data", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                         credentials=pki.channel_credentials(client=False)).start()
    yield proc
    proc.stop()


def test_open_mode_says_so(upgraded: ServerProcess) -> None:
    log = upgraded.log_tail(20000)
    assert "NO API KEYS CONFIGURED" in log and "tenant 'default'" in log


def test_tls_without_client_certificate(upgraded: ServerProcess, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(upgraded.target, ca_file=pki.ca) as c:
        assert {m.tenant for m in c.list_models()} == {"default"}
    with Client(upgraded.target, ca_file=pki.ca, api_key="ignored-in-open-mode") as c:
        assert len(c.list_models()) == 2
    with Client(upgraded.target, timeout=5) as plain, pytest.raises(Unavailable):
        plain.list_models()  # plaintext to a TLS port
    with Client(upgraded.target, ca_file=pki.client_cert, timeout=5) as wrong_ca, pytest.raises(Unavailable):
        wrong_ca.list_models()  # does not trust the server's certificate
    assert cli_main(["--target", upgraded.target, "--ca-file", str(pki.ca), "--json", "models"]) == 0
    assert {m["ref"]["name"] for m in json.loads(capsys.readouterr().out)} == {"pets", "default"}


def test_old_data_directory_upgrades_in_place(upgraded: ServerProcess, alice_model: Trained, pki: Pki) -> None:
    data = upgraded.data_dir
    with Client(upgraded.target, ca_file=pki.ca) as c:
        models = c.list_models()
        assert sorted((m.tenant, m.ref.name, m.ref.version) for m in models) == [
            ("default", "default", 1), ("default", "pets", 1)]
        # the old models answer as they did (pets is a copy of alice's model)
        for name in ("pets", "default"):
            assert [r.top for r in c.classify(name, alice_model.images, top_k=2, version=1)] == alice_model.answers
        assert c.get_dataset("ds-0123456789abcdef").tenant == "default"
        job = c.get_job("job-0123456789abcdef")
        assert job.tenant == "default" and job.state == training_pb2.SUCCEEDED
    assert (data / "models" / "default" / "pets" / "1" / "model.safetensors").exists() or \
        any((data / "models" / "default" / "pets" / "1").iterdir())
    assert (data / "models" / "default" / "default" / "1").is_dir()
    assert not (data / "models" / "pets").exists() and not (data / "models.legacy").exists()
    assert not (data / "models" / "default" / MIGRATION_MARKER).exists()
    db = sqlite3.connect(data / "fineserve.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {r[0] for r in db.execute("SELECT path FROM models")} == {
        str(data / "models" / "default" / n / "1") for n in ("pets", "default")}


@pytest.mark.parametrize("stop_after", ["marker", "first rename", "mkdir", "second rename", "done"])
def test_interrupted_upgrade_resumes(tmp_path: Path, stop_after: str) -> None:
    """Simulate a crash after each step of the file move; the next start finishes the job exactly once."""
    data = tmp_path / "data"
    legacy_data_dir(data, None, models_pb2.Model(ref=common_pb2.ModelRef(name="x", version=1)))
    root, pending = data / "models", data / "models.legacy"
    steps = ["marker", "first rename", "mkdir", "second rename", "done"]
    for step in steps[: steps.index(stop_after) + 1]:
        if step == "marker":
            (root / MIGRATION_MARKER).write_text("")
        elif step == "first rename":
            root.rename(pending)
        elif step == "mkdir":
            root.mkdir()
        elif step == "second rename":
            pending.rename(root / "default")
        elif step == "done":
            Registry(Store(data / "fineserve.db"), data)  # a full run, then a second start below
    store = Store(data / "fineserve.db")
    Registry(store, data)
    assert store.schema_version == SCHEMA_VERSION
    assert sorted(p for *_, p in store.model_paths()) == sorted(
        str(root / "default" / n / "1") for n in ("pets", "default"))
    for n in ("pets", "default"):
        assert (root / "default" / n / "1" / "card.json").exists()
    assert not pending.exists() and not (root / "default" / "default" / "default").exists()
    assert store.get_job("job-0123456789abcdef").tenant == "default"
    # the old idempotency key still finds its job, in the default tenant only
    again = training_pb2.Job(id="job-new", tenant="default", request=training_pb2.CreateFineTuneJobRequest(
        model_name="pets"))
    assert store.put_job(again, "old-key").id == "job-0123456789abcdef"
    again.tenant = "acme"
    assert store.put_job(again, "old-key").id == "job-new"
