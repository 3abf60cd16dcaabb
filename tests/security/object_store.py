"""Real object-storage servers for the tests, each a child process on a free loopback port: an S3-compatible one
(moto's server mode) and a GCS one (gcp-storage-emulator, Google's JSON API). The front door reaches them through
the standard environment (AWS_ENDPOINT_URL_S3 and keys; STORAGE_EMULATOR_HOST), as it would a cluster's store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from gcsfs.core import GCSFileSystem

BUCKET = "fineserve-test"


@dataclass
class ObjectStore:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What the front door's environment carries (credentials are moto's any-will-do test keys)."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": "test-key",
                "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="test-key",
                            aws_secret_access_key="test-secret", region_name="us-east-1")

    def put_folder(self, folder: Path, prefix: str) -> int:
        """Every file under folder as s3://BUCKET/prefix/<relative path>; how many."""
        s3 = self.client()
        files = [f for f in sorted(folder.rglob("*")) if f.is_file()]
        for f in files:
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{f.relative_to(folder).as_posix()}", Body=f.read_bytes())
        return len(files)

    def put(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=body)


@dataclass
class GcsStore:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What the front door's environment carries (the emulator takes no credentials)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def put_folder(self, folder: Path, prefix: str) -> int:
        """Every file under folder as gs://BUCKET/prefix/<relative path>; how many."""
        files = [f for f in sorted(folder.rglob("*")) if f.is_file()]
        for f in files:
            self.put(f"{prefix}/{f.relative_to(folder).as_posix()}", f.read_bytes())
        return len(files)

    def put(self, key: str, body: bytes) -> None:
        fs = GCSFileSystem(token="anon", endpoint_url=self.endpoint, skip_instance_cache=True)
        fs.pipe(f"{BUCKET}/{key}", body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _child_server(argv: list[str], log_path: Path, ready: Callable[[], object], not_yet: tuple[type[Exception], ...],
                  timeout: float) -> Iterator[None]:
    """argv as a child process logging to log_path, once ready() stops raising not_yet; stopped on exit."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[2]} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                ready()
                break
            except not_yet:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def object_store(log_path: Path, timeout: float = 60) -> Iterator[ObjectStore]:
    """moto_server on a free port, with BUCKET created."""
    port = free_port()
    store = ObjectStore(f"http://127.0.0.1:{port}")
    with _child_server([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log_path,
                       lambda: store.client().create_bucket(Bucket=BUCKET),
                       (botocore.exceptions.EndpointConnectionError,), timeout):
        yield store


@contextmanager
def gcs_store(log_path: Path, timeout: float = 60) -> Iterator[GcsStore]:
    """gcp-storage-emulator (in memory) on a free port, with BUCKET created."""
    port = free_port()
    store = GcsStore(f"http://127.0.0.1:{port}")
    with _child_server([sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port",
                        str(port), "--in-memory", "--default-bucket", BUCKET], log_path,
                       lambda: urllib.request.urlopen(f"{store.endpoint}/storage/v1/b/{BUCKET}", timeout=5).close(),
                       (urllib.error.URLError, ConnectionError), timeout):
        yield store
