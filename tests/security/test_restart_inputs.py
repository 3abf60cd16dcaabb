"""The restart-with-broken-inputs matrix, against a real server: every kind of job input (an uploaded data set, a
registered data set under an allowed root, a stored base model, a weights file, an allowed root itself) taken
away while its job is running, queued, or re-queued across a restart. Each such job ends FAILED with a message
naming what is gone; the server comes back up and lists every job; other tenants' jobs run to the end; and a
cancel that lands while a re-queued job starts ends CANCELLED.

One server of its own (it is restarted with another allowed root), one restart for the whole matrix: jobs are
held QUEUED behind one running job (--max-running-jobs 1) instead of by sleeps, and every input is tiny."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from fineserve.v1 import training_pb2
from fineserve_client import Client
from harness.launcher import ServerProcess
from security.conftest import TINY
from security.helpers import image_folders
from service.auth import hash_key, new_key, write_keys_file

TERMINAL = {training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED}
BLOCKER = {**TINY, "epochs": 200}  # runs until its input goes, or it is cancelled


def wait_state(client: Client, job_id: str, states: set[int], timeout: float = 300) -> training_pb2.Job:
    deadline = time.monotonic() + timeout
    while (job := client.get_job(job_id)).state not in states:
        assert job.state not in TERMINAL, f"{job_id} ended {training_pb2.JobState.Name(job.state)}: {job.error}"
        assert time.monotonic() < deadline, f"{job_id} still {training_pb2.JobState.Name(job.state)}"
        time.sleep(0.2)
    return job


def wait_epoch(client: Client, job_id: str) -> None:
    for ev in client.watch_job(job_id):
        if ev.WhichOneof("event") == "epoch":
            return


def clients(server: ServerProcess, keys: dict[str, str]) -> tuple[Client, Client]:
    return Client(server.target, api_key=keys["alice"]), Client(server.target, api_key=keys["bob"])


def test_jobs_whose_inputs_go_fail_alone_across_a_restart(tmp_path: Path) -> None:
    keys = {t: new_key() for t in ("alice", "bob")}
    write_keys_file(tmp_path / "keys.json", {t: [hash_key(k)] for t, k in keys.items()})
    args = ["--api-keys-file", str(tmp_path / "keys.json"), "--max-running-jobs", "1"]
    base, root, dropped = tmp_path, tmp_path / "root", tmp_path / "dropped-root"
    image_folders(root / "registered", {"x": (200, 0, 0), "y": (0, 0, 200)}, per_class=3, size=8)
    for r in (root, dropped):
        r.mkdir(exist_ok=True)
        (r / "w.pth").write_bytes(b"weights")
    server = ServerProcess(base / "data", *args, "--allowed-root", str(root), "--allowed-root", str(dropped)).start()
    alice, bob = clients(server, keys)
    try:
        folders = {n: image_folders(base / n, {"red": (220, 30, 30), "blue": (30, 30, 220)}, per_class=4, size=12)
                   for n in ("a", "b")}
        ds_a = alice.upload_dataset(folders["a"], name="a")
        base_job = alice.create_fine_tune_job(ds_a.id, "base", **TINY)
        assert alice.wait(base_job.id, progress=False, timeout=300).state == training_pb2.SUCCEEDED
        ds_b, ds_b1, ds_gone = (c.upload_dataset(folders[f], name=n)
                                for c, f, n in ((bob, "b", "b"), (bob, "b", "b1"), (alice, "a", "gone")))
        registered = alice.register_dataset(root / "registered", name="registered")

        running = bob.create_fine_tune_job(ds_b1.id, "running", **BLOCKER)  # holds the one running slot
        wait_epoch(bob, running.id)
        queued = {  # alice's, each waiting behind it
            "dataset": alice.create_fine_tune_job(ds_gone.id, "m", **TINY),
            "base model": alice.create_fine_tune_job(ds_a.id, "m", **{**TINY, "base": "model:base"})}
        restarted = bob.create_fine_tune_job(ds_b.id, "restarted", **BLOCKER)  # runs across the restart
        requeued = {
            "registered": alice.create_fine_tune_job(registered.id, "m", **TINY),
            "weights": alice.create_fine_tune_job(ds_a.id, "m", **{**TINY, "base": f"file:{root / 'w.pth'}"}),
            "root": alice.create_fine_tune_job(ds_a.id, "m", **{**TINY, "base": f"file:{dropped / 'w.pth'}"})}
        other = bob.create_fine_tune_job(ds_b.id, "other", **TINY)

        alice.delete_dataset(ds_gone.id)  # while queued
        alice.delete_model("base")
        bob.delete_dataset(ds_b1.id)  # while running: stopped at its next epoch
        done = bob.wait(running.id, progress=False, timeout=300)
        assert done.state == training_pb2.FAILED and f"data set {ds_b1.id} was deleted" in done.error, done.error
        for job in queued.values():  # their turn came: failed without reaching a worker
            done = alice.wait(job.id, progress=False, timeout=120)
            assert done.state == training_pb2.FAILED and done.attempts == 0, done
        assert f"data set {ds_gone.id} was deleted" in alice.get_job(queued["dataset"].id).error
        assert "base model base/1 was deleted" in alice.get_job(queued["base model"].id).error
        wait_state(bob, restarted.id, {training_pb2.RUNNING})
        assert server.stop() == 0

        shutil.rmtree(root / "registered")  # while the server is down
        (root / "w.pth").unlink()
        alice.close(), bob.close()
        server = ServerProcess(base / "data", *args, "--allowed-root", str(root)).start()
        alice, bob = clients(server, keys)
        cancelled = bob.cancel_job(restarted.id)  # re-queued: starting again, or about to
        assert bob.wait(restarted.id, progress=False, timeout=120).state == training_pb2.CANCELLED, cancelled
        errors = {what: alice.get_job(job.id) for what, job in requeued.items()}
        assert {w: j.state for w, j in errors.items()} == dict.fromkeys(requeued, training_pb2.FAILED), errors
        assert f"data set {registered.id}'s files" in errors["registered"].error
        assert f"base.weights_file {root / 'w.pth'} is no longer there" in errors["weights"].error
        assert "no longer under an allowed root" in errors["root"].error
        assert bob.wait(other.id, progress=False, timeout=300).state == training_pb2.SUCCEEDED
        assert server.healthy()
        assert {j.id for j in alice.list_jobs()} == {base_job.id, *(j.id for j in [*queued.values(),
                                                                                    *requeued.values()])}
        assert {j.id for j in bob.list_jobs()} == {running.id, restarted.id, other.id}
    finally:
        alice.close(), bob.close()
        server.stop()
