"""API keys: no key or a wrong key is UNAUTHENTICATED on every service; health and reflection stay open; the
keys file holds only hashes; keys are managed with `python -m service.keys` and picked up live; every
mutating call leaves one JSON audit line."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fineserve.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    models_pb2,
    training_pb2,
    training_pb2_grpc,
)
from fineserve_common.errors import Unavailable
from harness.launcher import ServerProcess
from security.conftest import SecureServer, Trained
from security.helpers import Stubs, png, upload_requests, zip_bytes
from service import auth
from service import keys as keys_cli
from service.auth import AuthError, KeysFileError, KeyStore, hash_key, new_key, parse_keys, write_keys_file
from service.errors import rpc, rpc_stream
from service.interceptors import AuthInterceptor

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
T = TypeVar("T")


def _soon(found: Callable[[], T], what: str, timeout: float = 30) -> T:
    """found()'s first truthy answer, polled until timeout."""
    deadline = time.monotonic() + timeout
    while not (answer := found()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return answer


def _stalled_upload(s: Stubs, name: str, timeout: float) -> tuple[grpc.Future, threading.Event]:
    """An UploadDataset whose client sends the header and 100 kB, then nothing (no more bytes, no end) until the
    event is set."""
    release = threading.Event()

    def requests() -> Iterator[datasets_pb2.UploadDatasetRequest]:
        yield datasets_pb2.UploadDatasetRequest(header=datasets_pb2.UploadHeader(
            name=name, layout=datasets_pb2.IMAGE_FOLDERS, format=datasets_pb2.ZIP, sha256="0" * 64,
            size_bytes=1_000_000))
        yield datasets_pb2.UploadDatasetRequest(chunk=bytes(100_000))
        release.wait(120)

    return s.datasets.UploadDataset.future(requests(), metadata=s.metadata, timeout=timeout), release


def _every_service(s: Stubs) -> dict[str, tuple[grpc.StatusCode, str]]:
    image = common_pb2.Image(data=png(4, 4))
    return {
        "ListDatasets": s.code(s.datasets.ListDatasets, datasets_pb2.ListDatasetsRequest()),
        "UploadDataset": s.code(s.datasets.UploadDataset, upload_requests(zip_bytes({"a/1.png": png(4, 4)}))),
        "DeleteDataset": s.code(s.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(id="ds-1")),
        "ListJobs": s.code(s.training.ListJobs, training_pb2.ListJobsRequest()),
        "WatchJob": s.code(s.training.WatchJob, training_pb2.WatchJobRequest(id="job-1")),
        "CreateFineTuneJob": s.code(s.training.CreateFineTuneJob, training_pb2.CreateFineTuneJobRequest()),
        "ListModels": s.code(s.models.ListModels, models_pb2.ListModelsRequest()),
        "DeleteModel": s.code(s.models.DeleteModel, models_pb2.DeleteModelRequest(
            ref=common_pb2.ModelRef(name="pets"))),
        "Classify": s.code(s.inference.Classify, inference_pb2.ClassifyRequest(
            model=common_pb2.ModelRef(name="pets"), images=[image])),
        "PredictText": s.code(s.inference.PredictText, inference_pb2.PredictTextRequest(texts=["hi"])),
    }


@pytest.mark.parametrize("key", [None, "fsk_not-a-key-we-issued", "", "x" * 600])
def test_missing_or_unknown_key_is_unauthenticated(secure: SecureServer, alice_model: Trained, key: str | None) -> None:
    s = secure.stubs(None, key=key)
    for method, (code, details) in _every_service(s).items():
        assert code == UNAUTH, f"{method}: {code.name} {details}"
        assert ("missing credentials" if not key else "invalid API key") in details, details
    # nothing was created or deleted by those calls
    alice = secure.client("alice")
    assert alice.get_model("pets", 1).ref.version == 1


def test_malformed_authorization_header(secure: SecureServer) -> None:
    s = secure.stubs(None)
    for value in ("Basic dXNlcjpwYXNz", "Bearer", secure.keys["alice"], f"Token {secure.keys['alice']}"):
        try:
            s.models.ListModels(models_pb2.ListModelsRequest(), metadata=(("authorization", value),), timeout=10)
            raise AssertionError(f"{value!r} was accepted")
        except grpc.RpcError as e:
            assert e.code() == UNAUTH, value
    # scheme is case-insensitive, surrounding blanks ignored
    ok = s.models.ListModels(models_pb2.ListModelsRequest(), timeout=10,
                             metadata=(("authorization", f"  bearer  {secure.keys['alice']} "),))
    assert all(m.tenant == "alice" for m in ok.models)


def test_health_and_reflection_need_no_key(secure: SecureServer) -> None:
    s = secure.stubs(None)
    health = health_pb2_grpc.HealthStub(s.channel)
    for service in ("", "fineserve.v1.Models", "fineserve.v1.Inference"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(s.channel)
    answers = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=10))
    names = {svc.name for svc in answers[0].list_services_response.service}
    assert {"fineserve.v1.Datasets", "fineserve.v1.Training", "fineserve.v1.Models",
            "fineserve.v1.Inference", "grpc.health.v1.Health"} <= names


def test_keys_file_holds_hashes_only(secure: SecureServer) -> None:
    text = secure.keys_file.read_text()
    for tenant, key in secure.keys.items():
        assert key not in text
        assert hash_key(key) in json.loads(text)[tenant]
    assert secure.keys_file.stat().st_mode & 0o077 == 0  # not readable by group/others


def test_keys_cli_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "keys.json"
    out = subprocess.run([sys.executable, "-m", "service.keys", "add", "--tenant", "acme", "--file", str(f)],
                         capture_output=True, text=True, check=True)
    key = out.stdout.strip()
    assert key.startswith("fsk_") and len(key) >= 40 and "shown only this once" in out.stderr
    assert key not in f.read_text() and parse_keys(f.read_text()) == {"acme": [hash_key(key)]}
    assert keys_cli.main(["add", "--tenant", "acme", "--file", str(f)]) == 0
    second = capsys.readouterr().out.strip()
    store = KeyStore(f)
    assert store.authenticate(f"Bearer {key}").tenant == store.authenticate(f"Bearer {second}").tenant == "acme"
    assert keys_cli.main(["list", "--file", str(f)]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("acme\t") and key not in listing and second not in listing
    fp = store.authenticate(f"Bearer {key}").key_id
    assert keys_cli.main(["remove", "--tenant", "acme", "--fingerprint", fp, "--file", str(f)]) == 0
    assert parse_keys(f.read_text()) == {"acme": [hash_key(second)]}
    assert keys_cli.main(["add", "--tenant", "Bad Name!", "--file", str(f)]) == 2
    assert keys_cli.main(["remove", "--tenant", "acme", "--file", str(f)]) == 0
    assert parse_keys(f.read_text()) == {}


def test_keystore_rules(tmp_path: Path) -> None:
    key = new_key()
    with pytest.raises(KeysFileError, match="never raw keys"):
        parse_keys(json.dumps({"acme": [key]}))
    with pytest.raises(KeysFileError) as refused:
        parse_keys(json.dumps({"acme": [key]}))
    assert key not in str(refused.value)
    with pytest.raises(KeysFileError, match="both"):
        parse_keys(json.dumps({"a": [hash_key(key)], "b": [hash_key(key)]}))
    with pytest.raises(KeysFileError, match="must match"):
        parse_keys(json.dumps({"../etc": []}))
    assert parse_keys(f"acme:\n  - {hash_key(key)}\n") == {"acme": [hash_key(key)]}  # YAML works too
    with pytest.raises(KeysFileError, match="cannot read"):
        KeyStore(tmp_path / "missing.json")
    empty = tmp_path / "empty.json"
    write_keys_file(empty, {})
    with pytest.raises(AuthError):  # a configured but empty file refuses everyone: it never opens the door
        KeyStore(empty).authenticate(f"Bearer {key}")
    assert KeyStore(None).authenticate(None).tenant == "default"  # open mode


def test_keys_file_gone_or_unreadable_refuses_every_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(auth, "RELOAD_CHECK_S", 0.0)  # every call looks at the file
    f = tmp_path / "keys.json"
    key = new_key()
    write_keys_file(f, {"acme": [hash_key(key)]})
    store = KeyStore(f)
    assert store.authenticate(f"Bearer {key}").tenant == "acme"
    for unreadable in (False, True):  # deleted; replaced by something that cannot be read as a file
        f.unlink()
        if unreadable:
            f.mkdir()
        for _ in range(3):
            for authorization in (f"Bearer {key}", None):
                with pytest.raises(Unavailable, match=r"cannot read its API keys file.*restores the file"):
                    store.authenticate(authorization)
        if f.is_dir():
            f.rmdir()
        f.write_text("{not json nor yaml: [")  # back, but mistyped: still refused
        with pytest.raises(Unavailable):
            store.authenticate(f"Bearer {key}")
        write_keys_file(f, {"acme": [hash_key(key)]})  # back: the key works again
        assert store.authenticate(f"Bearer {key}").tenant == "acme"
    refusals = [r for r in caplog.records if "until it is restored" in r.getMessage()]
    assert len(refusals) == 2 and all(str(f) in r.getMessage() for r in refusals), "one line per outage"


def test_server_refuses_to_start_with_raw_keys(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"acme": [new_key()]}))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="never raw keys"):
        ServerProcess(tmp_path / "data", "--api-keys-file", str(f)).start(timeout=60)
    assert time.monotonic() - started < 30  # refused before Ray starts


def test_new_key_is_picked_up_without_restart(secure: SecureServer) -> None:
    keys = json.loads(secure.keys_file.read_text())
    dave = new_key()
    keys["dave"] = [hash_key(dave)]
    write_keys_file(secure.keys_file, keys)
    s = secure.stubs(None, key=dave)
    deadline = time.monotonic() + 15
    while True:
        code, _ = s.code(s.models.ListModels, models_pb2.ListModelsRequest())
        if code == grpc.StatusCode.OK or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == grpc.StatusCode.OK
    del keys["dave"]
    write_keys_file(secure.keys_file, keys)
    deadline = time.monotonic() + 15
    while s.code(s.models.ListModels, models_pb2.ListModelsRequest())[0] != UNAUTH:
        assert time.monotonic() < deadline, "a removed key still works"
        time.sleep(0.5)


def test_deleted_keys_file_refuses_calls_until_restored(secure: SecureServer) -> None:
    saved = secure.keys_file.read_bytes()
    s = secure.stubs("alice")

    def code_within(expected: grpc.StatusCode, what: str) -> str:
        deadline = time.monotonic() + 20  # the server looks at the file every few seconds
        while (answer := s.code(s.models.ListModels, models_pb2.ListModelsRequest()))[0] != expected:
            assert time.monotonic() < deadline, f"{what}: {answer}"
            time.sleep(0.3)
        return answer[1]

    secure.keys_file.unlink()
    try:
        details = code_within(grpc.StatusCode.UNAVAILABLE, "a deleted keys file still lets keys in")
        assert "cannot read its API keys file" in details and str(secure.keys_file) not in details
    finally:
        secure.keys_file.write_bytes(saved)
        secure.keys_file.chmod(0o600)
    code_within(grpc.StatusCode.OK, "the restored keys file is not used")


def test_audit_line_per_mutating_call(secure: SecureServer, alice_model: Trained) -> None:
    before = len(secure.audit())
    alice, bob, anon = secure.stubs("alice"), secure.stubs("bob"), secure.stubs(None)
    assert alice.code(alice.models.GetModel, models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name="pets")))[0] \
        == grpc.StatusCode.OK  # reads are not audited
    bob.code(bob.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(id=alice_model.dataset.id))
    anon.code(anon.models.DeleteModel, models_pb2.DeleteModelRequest(ref=common_pb2.ModelRef(name="pets")))
    bob.code(bob.training.CancelJob, training_pb2.CancelJobRequest(id=alice_model.job.id))
    code, _ = alice.code(alice.datasets.UploadDataset, upload_requests(b"not a zip", name="junk"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    deadline = time.monotonic() + 10  # a refusal reaches the caller a moment before its audit line is written
    while len(new := secure.audit()[before:]) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(e["audit"], e["tenant"], e["code"]) for e in new] == [
        ("DeleteDataset", "bob", "NOT_FOUND"),
        ("DeleteModel", None, "UNAUTHENTICATED"),
        ("CancelJob", "bob", "NOT_FOUND"),
        ("UploadDataset", "alice", "INVALID_ARGUMENT"),
    ]
    assert new[0]["target"] == alice_model.dataset.id and new[2]["target"] == alice_model.job.id
    assert new[3]["name"] == "junk" and "not a readable zip" in new[3]["message"]
    for e in new:
        assert {"time", "tenant", "method", "code", "peer"} <= set(e)
        assert e["method"].startswith("/fineserve.v1.")
        assert not any(k in json.dumps(e) for k in secure.keys.values())
    # the successful upload and job of alice's fixture were audited with the ids they created
    created = [e for e in secure.audit()[:before] if e["tenant"] == "alice" and e["code"] == "OK"]
    assert {"UploadDataset", "CreateFineTuneJob"} <= {e["audit"] for e in created}
    assert alice_model.job.id in {e.get("target") for e in created}
    assert alice_model.dataset.id in {e.get("target") for e in created}


def test_upload_cancelled_by_its_client_is_audited_and_cleaned_up(secure: SecureServer) -> None:
    tmp = secure.proc.data_dir / "tmp"
    before = set(tmp.iterdir())
    call, release = _stalled_upload(secure.stubs("alice"), "abandoned", timeout=120)
    try:
        partial = _soon(lambda: [p for p in set(tmp.iterdir()) - before
                                 if p.suffix == ".upload" and p.stat().st_size >= 100_000], "no partial upload")
        call.cancel()
    finally:
        release.set()
    entries = _soon(lambda: [e for e in secure.audit() if e.get("name") == "abandoned"], "no audit line")
    assert [(e["audit"], e["tenant"], e["code"]) for e in entries] == [("UploadDataset", "alice", "CANCELLED")]
    assert entries[0]["peer"].startswith("ipv4:127.0.0.1:")
    _soon(lambda: not any(p.exists() for p in partial), "the partial upload stayed")


def test_upload_past_its_deadline_is_one_log_line(secure: SecureServer) -> None:
    offset = secure.proc.log_path.stat().st_size
    # Long enough for the call to reach its handler even on a loaded machine (else gRPC alone answers it).
    call, release = _stalled_upload(secure.stubs("bob"), "overdue", timeout=4)
    try:
        with pytest.raises(grpc.RpcError) as failed:
            call.result(timeout=60)
    finally:
        release.set()
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    entries = _soon(lambda: [e for e in secure.audit() if e.get("name") == "overdue"], "no audit line")
    assert [(e["audit"], e["tenant"], e["code"]) for e in entries] == [("UploadDataset", "bob", "DEADLINE_EXCEEDED")]

    def log() -> str:
        return secure.proc.log_path.read_bytes()[offset:].decode(errors="replace")

    line = "fineserve.v1.Datasets/UploadDataset: the caller's deadline passed after"
    _soon(lambda: line in log(), "no log line for the deadline")
    assert log().count(line) == 1 and " INFO service.interceptors: " in log()
    assert "Traceback" not in log() and " ERROR " not in log(), log()


class _Slow(datasets_pb2_grpc.DatasetsServicer, training_pb2_grpc.TrainingServicer):
    """Servicer methods that outlast their callers' deadlines, one per call shape: waiting on the event loop, in
    a thread, streaming. `entered` counts the calls that reached them: under load, a call whose deadline passes
    before it reaches its handler is answered by gRPC alone, and has nothing to log."""

    def __init__(self) -> None:
        self.entered: Counter[str] = Counter()
        self.release = threading.Event()

    @rpc
    async def GetDataset(self, request: datasets_pb2.GetDatasetRequest, context: object) -> datasets_pb2.Dataset:
        self.entered["GetDataset"] += 1
        await asyncio.sleep(60)
        return datasets_pb2.Dataset()

    @rpc
    async def DeleteDataset(self, request: datasets_pb2.DeleteDatasetRequest,
                            context: object) -> datasets_pb2.DeleteDatasetResponse:
        self.entered["DeleteDataset"] += 1
        await asyncio.to_thread(self.release.wait, 60)
        return datasets_pb2.DeleteDatasetResponse()

    async def ListDatasets(self, request: datasets_pb2.ListDatasetsRequest,
                           context: object) -> datasets_pb2.ListDatasetsResponse:
        """Without the rpc wrapper's own timeout: only gRPC's cancellation at the deadline ends it."""
        self.entered["ListDatasets"] += 1
        await asyncio.sleep(60)
        return datasets_pb2.ListDatasetsResponse()

    @rpc_stream
    async def WatchJob(self, request: training_pb2.WatchJobRequest,
                       context: object) -> AsyncIterator[training_pb2.JobEvent]:
        self.entered["WatchJob"] += 1
        while True:
            yield training_pb2.JobEvent()
            await asyncio.sleep(0.05)


def test_deadline_expiry_is_one_info_line_in_every_call_shape(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    slow = _Slow()

    def deadline_lines() -> Counter[str]:
        return Counter(r.getMessage().split(":")[0].rsplit("/", 1)[-1] for r in caplog.records
                       if r.name == "service.interceptors" and "deadline passed" in r.getMessage())

    async def main() -> set[str]:
        server = grpc.aio.server(interceptors=[AuthInterceptor(KeyStore(None))])
        datasets_pb2_grpc.add_DatasetsServicer_to_server(slow, server)
        training_pb2_grpc.add_TrainingServicer_to_server(slow, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        codes = set()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            datasets, training = datasets_pb2_grpc.DatasetsStub(channel), training_pb2_grpc.TrainingStub(channel)
            calls = {"GetDataset": lambda t: datasets.GetDataset(datasets_pb2.GetDatasetRequest(id="ds-1"), timeout=t),
                     "DeleteDataset": lambda t: datasets.DeleteDataset(datasets_pb2.DeleteDatasetRequest(id="ds-1"),
                                                                       timeout=t),
                     # many at once: gRPC then ends some a few milliseconds before their deadline
                     "ListDatasets": lambda t: asyncio.gather(*[
                         datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), timeout=t + i / 1000)
                         for i in range(20)]),
                     "WatchJob": lambda t: _drain(training.WatchJob(training_pb2.WatchJobRequest(id="job-1"),
                                                                    timeout=t))}
            for name, call in calls.items():
                for timeout in (0.5, 1, 2, 4, 8):  # a longer one when the call did not reach its handler in time
                    try:
                        await call(timeout)
                    except grpc.aio.AioRpcError as e:
                        codes.add(e.code().name)
                    if slow.entered[name]:
                        break
        deadline = time.monotonic() + 10  # the server side finishes a moment after the caller gave up
        while deadline_lines() != slow.entered and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        slow.release.set()
        await server.stop(0)
        return codes

    assert asyncio.run(main()) == {"DEADLINE_EXCEEDED"}
    assert set(slow.entered) == {"GetDataset", "DeleteDataset", "ListDatasets", "WatchJob"}
    assert deadline_lines() == slow.entered, "one line per call that passed its deadline in its handler"
    lines = [r for r in caplog.records if r.name == "service.interceptors"]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text


async def _drain(stream: grpc.aio.UnaryStreamCall) -> None:
    async for _ in stream:
        pass
