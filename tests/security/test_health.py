"""The health service tells the truth, and the exec probe reads it over mutual TLS: a real front door says
NOT_SERVING while its coordinator actor, or Ray's control store, does not answer (its process stopped with SIGSTOP:
alive but unreachable, as behind a partition) and SERVING again once it answers (SIGCONT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

from security.conftest import SecureServer
from service.health_probe import NO_ANSWER, NOT_SERVING, SERVING

DEADLINE_S = 90
STOPPED_DEADLINE_S = 30
"""How long a Ray process may stay stopped waiting for NOT_SERVING (which takes at most the watcher's interval plus
its timeout, 7 s): well under Ray's 60 s, after which its other processes give up on a silent GCS."""


def _probe(secure: SecureServer, *args: str) -> int:
    """python -m service.health_probe, run as kubelet runs an exec probe."""
    done = subprocess.run([sys.executable, "-m", "service.health_probe", "--target", secure.target, *args],
                          capture_output=True, text=True, timeout=60)
    return done.returncode


def _mtls(secure: SecureServer) -> list[str]:
    return ["--tls", "--ca", str(secure.pki.ca), "--cert", str(secure.pki.client_cert),
            "--key", str(secure.pki.client_key)]


def _until(secure: SecureServer, want: int, within: float = DEADLINE_S) -> int:
    deadline = time.monotonic() + within
    while (code := _probe(secure, *_mtls(secure))) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    return code


def _ray_process(secure: SecureServer, matches: Callable[[str], bool]) -> psutil.Process:
    """The one process of the front door's local Ray whose command line matches."""
    found, seen = [], []
    for p in psutil.Process(secure.proc.proc.pid).children(recursive=True):
        try:
            title = " ".join(p.cmdline())
        except psutil.Error:  # a worker that exited meanwhile (or a zombie)
            continue
        seen.append(title[:80])
        if matches(title):
            found.append(p)
    assert len(found) == 1, seen
    return found[0]


def _stopped_then_resumed(secure: SecureServer, process: psutil.Process) -> None:
    assert _until(secure, SERVING) == SERVING
    os.kill(process.pid, signal.SIGSTOP)
    try:
        assert _until(secure, NOT_SERVING, STOPPED_DEADLINE_S) == NOT_SERVING
        assert _probe(secure, *_mtls(secure), "--alive") == SERVING  # liveness: it answers, so it lives
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert _until(secure, SERVING) == SERVING


def test_probe_over_mutual_tls(secure: SecureServer) -> None:
    assert _probe(secure, *_mtls(secure)) == SERVING
    assert _probe(secure, *_mtls(secure), "--service", "fineserve.v1.Training") == SERVING
    assert _probe(secure, "--tls", "--ca", str(secure.pki.ca)) == NO_ANSWER  # no client certificate: refused
    assert _probe(secure) == NO_ANSWER  # plaintext to a TLS port


def test_not_serving_while_the_coordinator_is_unreachable(secure: SecureServer) -> None:
    _stopped_then_resumed(secure, _ray_process(secure, lambda title: title.startswith("ray::Coordinator")))


def test_not_serving_while_ray_is_unreachable(secure: SecureServer) -> None:
    """Ray's control store (GCS) stopped for seconds (well under Ray's 60 s reconnect limit): the coordinator still
    answers (actor calls go worker to worker), Ray does not."""
    _stopped_then_resumed(secure, _ray_process(secure, lambda title: "/gcs_server " in title))
