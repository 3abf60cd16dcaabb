"""One real front door (local Ray) for the security suite: API keys for three tenants, mutual TLS, tight limits,
an audit log file; plus one model trained by tenant "alice" that the tenancy, fuzz and load tests reuse."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_client import Client
from harness.launcher import ServerProcess
from security.helpers import Pki, Stubs, image_folders, make_pki, png
from security.object_store import BUCKET, ObjectStore, object_store
from service.auth import hash_key, new_key, write_keys_file

TENANTS = ("alice", "bob", "carol")
LIMITS = {
    "max-upload-bytes": 2_000_000,
    "max-archive-files": 200,
    "max-archive-ratio": 50,
    "max-images-per-request": 8,
    "max-image-pixels": 1_000_000,
    "max-text-chars": 1000,
    "max-texts-per-request": 4,
    "max-concurrent-jobs-per-tenant": 2,
    "max-message-bytes": 4_000_000,
}
# A model that trains in seconds on two CPU cores: random weights, 16 px, one epoch.
TINY = {"base": "none", "image_size": 16, "epochs": 1, "freeze_epochs": 0, "batch_size": 8, "lr": 1e-3,
        "precision": "fp32",
        "resources": {"cpu_only": True}}


@dataclass
class SecureServer:
    proc: ServerProcess
    pki: Pki
    keys: dict[str, str]
    keys_file: Path
    audit_log: Path
    root: Path
    outside: Path
    opened: list[Stubs | Client] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.proc.target

    def stubs(self, tenant: str | None, *, key: str | None = None, client_cert: bool = True) -> Stubs:
        s = Stubs(self.target, self.pki.channel_credentials(client_cert),
                  key if key is not None else (self.keys[tenant] if tenant else None))
        self.opened.append(s)
        return s

    def client(self, tenant: str, **kw: object) -> Client:
        c = Client(self.target, api_key=self.keys[tenant], ca_file=self.pki.ca, client_cert=self.pki.client_cert,
                   client_key=self.pki.client_key, **kw)
        self.opened.append(c)
        return c

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A real S3-compatible server (moto), reached through the AWS environment the front door inherits."""
    with object_store(tmp_path_factory.mktemp("moto") / "moto.log") as store, pytest.MonkeyPatch.context() as mp:
        for name, value in store.env.items():
            mp.setenv(name, value)
        yield store


@pytest.fixture(scope="session")
def secure(tmp_path_factory: pytest.TempPathFactory, pki: Pki, s3: ObjectStore) -> Iterator[SecureServer]:
    base = tmp_path_factory.mktemp("secure")
    keys = {t: new_key() for t in TENANTS}
    keys_file = base / "keys.json"
    write_keys_file(keys_file, {t: [hash_key(k)] for t, k in keys.items()})
    root, outside = base / "roots", base / "outside"
    image_folders(root / "good", {"x": (200, 0, 0), "y": (0, 0, 200)}, per_class=3, size=8)
    image_folders(outside / "secret", {"x": (200, 0, 0), "y": (0, 0, 200)}, per_class=3, size=8)
    audit_log = base / "audit.log"
    args = ["--api-keys-file", str(keys_file), "--tls-cert", str(pki.server_cert), "--tls-key",
            str(pki.server_key), "--tls-client-ca", str(pki.ca), "--audit-log", str(audit_log),
            "--allowed-root", str(root), "--allowed-url-prefix", f"s3://{BUCKET}/{{tenant}}/"]
    for name, value in LIMITS.items():
        args += [f"--{name}", str(value)]
    proc = ServerProcess(base / "data", *args, credentials=pki.channel_credentials())
    server = SecureServer(proc.start(), pki, keys, keys_file, audit_log, root, outside)
    yield server
    for o in server.opened:
        o.close()
    proc.stop()


@dataclass(frozen=True)
class Trained:
    dataset: datasets_pb2.Dataset
    job: training_pb2.Job
    images: list[bytes]  # reference inputs
    answers: list[list[tuple[str, float]]]  # the model's answers to them before any other test ran


def train_tiny(client: Client, folder: Path, model: str, timeout: float = 420,
               request_id: str | None = None) -> tuple[datasets_pb2.Dataset, training_pb2.Job]:
    ds = client.upload_dataset(folder, name=model)
    job = client.create_fine_tune_job(ds.id, model, request_id=request_id, **TINY)
    done = client.wait(job.id, progress=False, timeout=timeout)
    assert done.state == training_pb2.SUCCEEDED, done.error
    return ds, done


@pytest.fixture(scope="session")
def alice_model(secure: SecureServer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """alice's "pets" (classes red/blue), trained once for the whole suite."""
    started = time.monotonic()
    folder = image_folders(tmp_path_factory.mktemp("alice") / "pets", {"red": (220, 30, 30), "blue": (30, 30, 220)})
    client = secure.client("alice")
    ds, job = train_tiny(client, folder, "pets", request_id="alice-pets")
    images = [png(16, 16, c, noise_seed=i) for i, c in enumerate([(220, 30, 30), (30, 30, 220), (120, 120, 120)])]
    answers = [c.top for c in client.classify("pets", images, top_k=2, version=1)]
    print(f"\nalice's tiny model trained in {time.monotonic() - started:.1f}s")
    return Trained(ds, job, images, answers)
