"""A real S3-compatible server for the tests: moto's server mode, run as a child process on a free loopback port.
The front door reaches it through the standard AWS environment (endpoint and credentials), as it would a cluster's
object store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def object_store(log_path: Path, timeout: float = 60) -> Iterator[ObjectStore]:
    """moto_server on a free port, with BUCKET created; stopped (by its pid) on exit."""
    port = free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    store = ObjectStore(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                store.client().create_bucket(Bucket=BUCKET)
                break
            except botocore.exceptions.EndpointConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield store
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
