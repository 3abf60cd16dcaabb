"""Runs the front door as a child process on a free localhost port (the demo, the end-to-end tests and the
benchmarks), and a Ray head of its own for front doors that share one cluster."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

LISTENING = re.compile(r"fineserve listening on [^:]+:(\d+)")
METRICS = re.compile(r"fineserve metrics on [^:]+:(\d+)/metrics")
RAY_START_MISSED = re.compile(r"timed out during startup|Timed out waiting for file .*gcs_server_port")
"""How an embedded Ray that missed its own start-up deadlines ends a server (Ray waits 30 s, hard-coded, for its
raylet and GCS). On a loaded 2-core machine it happens now and then, and tries inside the same process then fail
alike (its half-started Ray stays behind in it), so start() runs a new process."""
PROCESS_STARTS = 3


class ServerExited(RuntimeError):
    """The server process ended before it listened; output is what it wrote in this start."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class ServerProcess:
    """credentials/options: how healthy() reaches a TLS server (grpc.ssl_channel_credentials, and e.g.
    ("grpc.ssl_target_name_override", name)); health checking needs no API key."""

    def __init__(self, data_dir: Path, *extra_args: str, credentials: grpc.ChannelCredentials | None = None,
                 options: list[tuple[str, object]] | None = None) -> None:
        self.data_dir = data_dir
        self.credentials = credentials
        self.options = options or []
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.target = ""
        # http://127.0.0.1:<port>/metrics when the server was started with --metrics-port.
        self.metrics_url = ""

    def start(self, timeout: float = 180) -> ServerProcess:
        """Start the server and wait until it listens; a start that Ray's own deadlines failed is run again in a
        new process (RAY_START_MISSED), up to PROCESS_STARTS times."""
        attempt = 1
        while True:
            try:
                return self._start_once(timeout)
            except ServerExited as e:
                if attempt == PROCESS_STARTS or not RAY_START_MISSED.search(e.output):
                    raise
            attempt += 1
            print(f"the server's embedded Ray missed its start-up deadline; starting it again ({attempt} of "
                  f"{PROCESS_STARTS})", file=sys.stderr)

    def _start_once(self, timeout: float) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"}
        # Where this start's lines begin, before the child writes any (another door may share the file).
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0", "--data-dir",
             str(self.data_dir), "--grace-seconds", "10", *self._args],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerExited(f"server exited with {self.proc.returncode}:\n{self.log_tail()}",
                                   self.log_path.read_bytes()[offset:].decode(errors="replace"))
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if m := LISTENING.search(text):
                self.target = f"127.0.0.1:{m.group(1)}"
                if metrics := METRICS.search(text):
                    self.metrics_url = f"http://127.0.0.1:{metrics.group(1)}/metrics"
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server did not start in {timeout}s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        ch = (grpc.secure_channel(self.target, self.credentials, options=self.options) if self.credentials
              else grpc.insecure_channel(self.target, options=self.options))
        with ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM, as Kubernetes does; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL, as a crashed node or an OOM kill would: no graceful stop, jobs are left RUNNING."""
        assert self.proc is not None
        self.proc.kill()
        return self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


class RayHead:
    """A Ray head node of its own (`ray start --head --block`), for front doors started with --ray-address: the
    Kubernetes shape on one machine. Leaving the context stops this cluster only (head, workers, replicas).

    Ray's token authentication is off for it and for the front doors started inside the context (on Kubernetes,
    KubeRay provisions the token; here it would be one more file to share)."""

    def __init__(self, log_path: Path, num_cpus: int | None = None) -> None:
        self.log_path = log_path
        self.num_cpus = num_cpus
        self._proc: subprocess.Popen[bytes] | None = None
        self._temp_dir = ""
        self._saved_auth: str | None = None

    def __enter__(self) -> str:
        """Starts the head; returns its address for --ray-address."""
        self._saved_auth = os.environ.get("RAY_AUTH_MODE")
        os.environ["RAY_AUTH_MODE"] = "disabled"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # Its own temp dir (short: Ray's socket paths must fit 107 bytes), so its address file never makes another
        # process's ray.init() join this cluster.
        self._temp_dir = tempfile.mkdtemp(prefix="fs-ray-", dir="/tmp")
        cpus = [f"--num-cpus={self.num_cpus}"] if self.num_cpus else []
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
                 f"--temp-dir={self._temp_dir}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                 "--disable-usage-stats", *cpus],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in self.log_path.read_bytes():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the Ray head did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        return f"127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        shutil.rmtree(self._temp_dir, ignore_errors=True)
        if self._saved_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = self._saved_auth
