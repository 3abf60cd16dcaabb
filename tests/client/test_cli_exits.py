"""The fineserve command's exit statuses (one per kind of outcome, listed by --help), its words for connection and
TLS failures, and Ctrl-C while it follows a job; against in-process stub servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from security.helpers import Pki, make_pki

from fineserve.v1 import common_pb2, models_pb2, models_pb2_grpc, training_pb2, training_pb2_grpc
from fineserve_client.cli import main

EXPECTED = {
    "NOT_FOUND": 3,
    "INVALID_ARGUMENT": 4, "FAILED_PRECONDITION": 4, "OUT_OF_RANGE": 4, "ALREADY_EXISTS": 4,
    "RESOURCE_EXHAUSTED": 4, "UNIMPLEMENTED": 4, "PERMISSION_DENIED": 4, "UNAUTHENTICATED": 4,
    "UNAVAILABLE": 5, "DEADLINE_EXCEEDED": 5, "ABORTED": 5,
    "INTERNAL": 1, "UNKNOWN": 1, "CANCELLED": 1, "DATA_LOSS": 1,
}
"""The documented exit status of a call that ends with each gRPC status code."""


class Refusing(models_pb2_grpc.ModelsServicer):
    """GetModel answers with the status code the model is named after ("ok": a model)."""

    def GetModel(self, request, context):
        if request.ref.name == "ok":
            return models_pb2.Model(ref=common_pb2.ModelRef(name="ok", version=1))
        context.abort(grpc.StatusCode[request.ref.name.upper()], f"refused as {request.ref.name}")


@pytest.fixture
def no_retries(monkeypatch):
    """One attempt per call, so that a status the SDK retries reaches the command at once."""
    monkeypatch.setenv("FINESERVE_MAX_ATTEMPTS", "1")


@pytest.mark.parametrize(("code", "status"), EXPECTED.items())
def test_each_status_code_has_its_exit_status(serve, capsys, no_retries, code, status) -> None:
    assert main(["--target", serve(Refusing()), "model", code.lower()]) == status
    assert capsys.readouterr().err == f"error: {code}: refused as {code.lower()}\n"


def test_help_lists_the_exit_statuses(capsys) -> None:
    assert main(["--help"]) == 0
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for number, words in ((2, "usage"), (3, "not found"), (4, "refused"), (5, "unavailable"),
                          (6, "job failed"), (130, "interrupted")):
        assert out.count(f"  {number:<3}  {words}") == 2


# -- reaching the server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki):
    """A TLS server for localhost/127.0.0.1 (``mutual``: it requires a client certificate of the test CA)."""
    servers = []

    def start(mutual: bool = False) -> str:
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        models_pb2_grpc.add_ModelsServicer_to_server(Refusing(), server)
        creds = grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
                                            root_certificates=pki.ca.read_bytes() if mutual else None,
                                            require_client_auth=mutual)
        port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(None)


def _reach(target: str, *options: str) -> list[str]:
    return ["--target", target, *options, "model", "ok"]


def test_tls_against_a_plaintext_server(serve, no_retries) -> None:
    """In the command's own process, so that the check sees all it writes to stderr, gRPC's core included."""
    target = serve(Refusing())
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    done = subprocess.run([sys.executable, "-m", "fineserve_client.cli", *_reach(target, "--tls")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 5
    assert done.stderr == (f"error: UNAVAILABLE: the server at {target} does not speak TLS (it answered in "
                           "plaintext): drop --tls, --ca-file and --client-cert, or point --target or "
                           "$FINESERVE_TARGET at the server's TLS port\n")


def test_settings_come_from_fineserve_variables(serve, capsys, monkeypatch, no_retries) -> None:
    target = serve(Refusing())
    monkeypatch.setenv("FINESERVE_TARGET", target)
    monkeypatch.setenv("FINESERVE_TLS", "yes")
    assert main(["model", "ok"]) == 5
    assert f"the server at {target} does not speak TLS" in capsys.readouterr().err
    monkeypatch.setenv("FINESERVE_TLS", "maybe")
    assert main(["model", "ok"]) == 2
    assert "FINESERVE_TLS" in capsys.readouterr().err
    monkeypatch.delenv("FINESERVE_TLS")
    assert main(["model", "ok"]) == 0


def test_tls_mismatches_say_what_to_pass(tls_server, pki, capsys, no_retries) -> None:
    target, mutual = tls_server(), tls_server(mutual=True)
    ca = ["--ca-file", str(pki.ca)]
    cases = [
        (_reach(target), "closed the connection at once: it may speak TLS only; try --tls"),
        (_reach(target, "--tls"), "is not signed by a CA this client trusts: pass the CA that signed it with "
                                  "--ca-file"),
        (_reach(target, *ca, "--server-name", "fineserve.example"), "does not name that host: connect by a name it "
                                                                     "carries, or pass it with --server-name"),
        (_reach(mutual, *ca), "it may require a client certificate (mutual TLS); pass --client-cert and "
                              "--client-key"),
        (_reach(mutual, *ca, "--client-cert", str(pki.rogue_cert), "--client-key", str(pki.rogue_key)),
         "it may not accept this client certificate"),
    ]
    for argv, words in cases:
        assert main(argv) == 5
        err = capsys.readouterr().err
        assert words in err and "SSL" not in err and "TSI_" not in err, err
    assert main(_reach(mutual, *ca, "--client-cert", str(pki.client_cert), "--client-key", str(pki.client_key))) == 0


def test_an_unreachable_address_is_named(capsys, no_retries) -> None:
    assert main(_reach("127.0.0.1:1")) == 5
    assert capsys.readouterr().err == (
        "error: UNAVAILABLE: nothing accepts connections at 127.0.0.1:1 (connection refused): check the host and "
        "port (--target or $FINESERVE_TARGET) and that the server is running\n")
    assert main(_reach("no-such-host.invalid:50051")) == 5
    assert "the host of no-such-host.invalid:50051 cannot be resolved" in capsys.readouterr().err


# -- Ctrl-C ----------------------------------------------------------------------------------------------


class Running(training_pb2_grpc.TrainingServicer):
    """A job that runs until the test ends; ``watched`` is set once the command follows its events."""

    def __init__(self) -> None:
        self.watched = threading.Event()
        self.done = threading.Event()
        self.cancelled: list[str] = []

    def CreateFineTuneJob(self, request, context):
        return training_pb2.Job(id="job-7", state=training_pb2.QUEUED)

    def WatchJob(self, request, context):
        yield training_pb2.JobEvent(job_id=request.id, sequence=1,
                                    state=training_pb2.StateChange(state=training_pb2.RUNNING))
        self.watched.set()
        self.done.wait(60)

    def CancelJob(self, request, context):
        self.cancelled.append(request.id)
        return training_pb2.Job(id=request.id, state=training_pb2.CANCELLED)


@pytest.mark.parametrize("command", [["train", "--dataset", "ds-1", "--model", "m"], ["watch", "job-7"]])
def test_ctrl_c_says_the_job_keeps_running(serve, capsys, command) -> None:
    """A real SIGINT to the fineserve command in its own process, while it follows the job."""
    servicer = Running()
    target = serve(servicer)
    # A test run started in the background ignores SIGINT, and a child inherits an ignored signal (a handled one
    # is reset to the default at exec): handled here, so the command starts as it does from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fineserve_client.cli", "--target", target, *command],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert servicer.watched.wait(60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        servicer.done.set()
        proc.kill()
    assert proc.returncode == 130, err
    assert (f"interrupted: job job-7 keeps running on the server.\n  follow it: fineserve --target {target} watch "
            f"job-7\n  stop it:   fineserve --target {target} cancel job-7\n") in err
    assert servicer.cancelled == [] and "Traceback" not in err
    assert main(["--target", target, "cancel", "job-7"]) == 0  # the hint's command works as printed
    assert servicer.cancelled == ["job-7"]
