"""Data-parallel fine-tuning through gRPC: a two-worker Ray Train job on mnist_tiny loses a training worker after
its first checkpoint, resumes from it, succeeds and serves; a two-worker segmentation job trains and serves; a
job whose generator hangs resumes after its lease and can be cancelled; requests it cannot run are refused up
front."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import grpc
from engine.test_engine_segmentation import CODES, _write

from e2e.helpers import TERMINAL, Api, classify, rpc_code, upload_requests, wait_for, zip_folder
from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, training_pb2
from harness.launcher import ServerProcess
from worker.engine import load_served_model

# The one-worker e2e job's recipe (test_image_classification.HYPER) at 32 px for 3 epochs, for time; batch_size
# is the global batch: 16 per worker.
HYPER = training_pb2.Hyperparameters(epochs=3, image_size=32, batch_size=32, lr=5e-3, lr_mult=10, flip=False)
TWO_WORKERS = common_pb2.Resources(workers=2, cpus_per_worker=1, cpu_only=True)
RANK_PID = re.compile(r"data-parallel worker rank (\d+) of 2: pid (\d+)")


def _request(dataset_id: str, **kw: object) -> training_pb2.CreateFineTuneJobRequest:
    fields = {"model_name": "digits-ddp", "hyperparameters": HYPER, "resources": TWO_WORKERS, **kw}
    return training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, arch="resnet18", dataset_id=dataset_id,
        base=training_pb2.BaseModel(random_init=True), **fields)


def test_two_worker_job_survives_a_lost_worker_and_serves(api: Api, mnist_dataset: datasets_pb2.Dataset,
                                                          mnist: Path) -> None:
    job = api.training.CreateFineTuneJob(_request(mnist_dataset.id), timeout=30)
    pids: dict[int, int] = {}
    for ev in api.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=600):
        kind = ev.WhichOneof("event")
        if kind == "log" and (m := RANK_PID.match(ev.log.message)):
            pids[int(m[1])] = int(m[2])
        if kind == "checkpoint":
            assert set(pids) == {0, 1}, "every rank announces its pid before the first checkpoint"
            os.kill(pids[1], signal.SIGKILL)
            break
    job = wait_for(api, job.id, TERMINAL, timeout=900)
    assert job.state == training_pb2.SUCCEEDED, job.error
    assert job.attempts == 2 and job.result.epochs_trained == HYPER.epochs

    events = list(api.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=30))
    states = [e.state for e in events if e.WhichOneof("event") == "state"]
    assert [s.state for s in states] == [training_pb2.QUEUED, training_pb2.RUNNING, training_pb2.QUEUED,
                                         training_pb2.RUNNING, training_pb2.SUCCEEDED]
    assert "worker lost (RayTaskError(WorkerLost))" in states[2].reason, states[2].reason
    logs = [e.log.message for e in events if e.WhichOneof("event") == "log"]
    assert "resumed from checkpoint after epoch 1" in logs, logs
    assert sum(bool(RANK_PID.match(m)) for m in logs) == 4  # two ranks per attempt
    epochs = [e.epoch for e in events if e.WhichOneof("event") == "epoch"]
    assert [e.epoch for e in epochs] == [1, 2, 3]  # epoch 1 once: the second attempt started after it

    files = sorted((mnist / "valid").glob("*/*.png"))
    correct = 0
    for i in range(0, len(files), 64):
        chunk = files[i:i + 64]
        resp = classify(api, "digits-ddp", [f.read_bytes() for f in chunk])
        correct += sum(r.top[0].label == f.parent.name for r, f in zip(resp.results, chunk, strict=True))
    accuracy = correct / len(files)
    print(f"\nmnist_tiny valid accuracy of the 2-worker model through gRPC: {accuracy:.4f} "
          f"(job metrics {dict(job.result.metrics)})")
    assert accuracy >= 0.95  # the one-worker e2e job's bar


def test_two_worker_segmentation_trains_and_serves(api: Api, server: ServerProcess, tmp_path: Path) -> None:
    """A U-Net trained on two workers (synthetic scenes, 32 px, one epoch): both ranks train, and Segment answers
    what the engine answers from the stored files."""
    scenes = _write(tmp_path / "scenes", 12, valid=[0, 5, 10])
    ds = api.datasets.UploadDataset(upload_requests(zip_folder(scenes), "scenes", layout=datasets_pb2.IMAGE_MASKS),
                                    timeout=120)
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.SEGMENTATION, model_name="scenes-ddp", arch="resnet18", dataset_id=ds.id,
        base=training_pb2.BaseModel(random_init=True), resources=TWO_WORKERS,
        hyperparameters=training_pb2.Hyperparameters(epochs=1, image_size=32, batch_size=4, lr=1e-2)), timeout=30)
    job = wait_for(api, job.id, TERMINAL, timeout=900)
    assert job.state == training_pb2.SUCCEEDED, job.error
    logs = [e.log.message for e in api.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=30)
            if e.WhichOneof("event") == "log"]
    assert sorted(int(m[1]) for m in map(RANK_PID.match, logs) if m) == [0, 1], logs
    assert any("data-parallel training on 2 workers" in m for m in logs), logs

    images = [p.read_bytes() for p in sorted((scenes / "images").glob("*.png"))[:4]]
    answer = api.inference.Segment(inference_pb2.SegmentRequest(
        model=common_pb2.ModelRef(name="scenes-ddp"), images=[common_pb2.Image(data=d) for d in images]),
        timeout=300)
    engine = load_served_model(server.data_dir / "models" / "default" / "scenes-ddp" / "1", device="cpu")
    assert engine.classes == CODES
    for served, expected in zip(answer.results, engine.segment(images), strict=True):
        assert (served.width, served.height) == (expected.width, expected.height)
        assert served.mask_png == expected.mask_png


def test_a_hung_two_worker_job_resumes_then_cancelling_stops_its_workers(
        api: Api, mnist_dataset: datasets_pb2.Dataset) -> None:
    """The job's generator stops (SIGSTOP) mid-run: the lease kills it, which also ends its Ray Train run, but
    only the job manager can free the run's placement group, so the resumed attempt can get its workers. Then a
    cancel stops that attempt's workers and gives their CPUs back."""
    long = training_pb2.Hyperparameters()
    long.CopyFrom(HYPER)
    long.epochs = 20  # still running when it is cancelled
    job = api.training.CreateFineTuneJob(_request(mnist_dataset.id, model_name="digits-ddp-cancelled",
                                                  hyperparameters=long), timeout=30)
    ranks: dict[int, list[int]] = {}
    generator = 0
    try:
        seen: list[str] = []
        for ev in api.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=600):
            kind = ev.WhichOneof("event")
            seen.append(training_pb2.JobState.Name(ev.state.state) if kind == "state" else kind)
            if kind == "log" and " worker pid " in ev.log.message:  # "attempt N: worker pid P on host"
                generator = int(ev.log.message.split()[4])
            if kind == "log" and (m := RANK_PID.match(ev.log.message)):
                ranks.setdefault(int(m[1]), []).append(int(m[2]))
            if kind == "batch":
                os.kill(generator, signal.SIGSTOP)
                break
        # QUEUED while Ray Train gathers the workers; RUNNING once they are up.
        assert seen.index("RUNNING") > seen.index("log") and set(ranks) == {0, 1}, seen
        deadline = time.monotonic() + 300
        while (now := api.training.GetJob(training_pb2.GetJobRequest(id=job.id), timeout=30)).attempts < 2:
            assert time.monotonic() < deadline and now.state not in TERMINAL, now
            time.sleep(1)
        assert wait_for(api, job.id, {training_pb2.RUNNING, *TERMINAL}, timeout=300).state == training_pb2.RUNNING
    finally:
        if generator:  # in case the lease's kill has not landed: never leave it stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(generator, signal.SIGKILL)
    ranks = {}  # both attempts' ranks, and the job's state changes, replayed from the start
    reasons: list[str] = []
    for ev in api.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=120):
        kind = ev.WhichOneof("event")
        if kind == "log" and (m := RANK_PID.match(ev.log.message)):
            ranks.setdefault(int(m[1]), []).append(int(m[2]))
        if kind == "state":
            reasons.append(ev.state.reason)
        if kind == "batch" and all(len(pids) == 2 for pids in ranks.values()):
            break
    assert any("no heartbeat" in r and "attempt 2" in r for r in reasons), reasons

    api.training.CancelJob(training_pb2.CancelJobRequest(id=job.id), timeout=60)
    job = wait_for(api, job.id, TERMINAL, timeout=120)
    assert job.state == training_pb2.CANCELLED, job.error
    pids = [pid for attempt in ranks.values() for pid in attempt]
    deadline = time.monotonic() + 30
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(pids), f"training workers {ranks} outlived their runs"
    # The workers' CPUs came back: a one-worker job asking for every CPU of the server's Ray starts.
    after = api.training.CreateFineTuneJob(_request(mnist_dataset.id, model_name="after-cancel",
                                                    resources=common_pb2.Resources(cpu_only=True)), timeout=30)
    assert wait_for(api, after.id, {training_pb2.RUNNING, *TERMINAL}, timeout=120).state != training_pb2.QUEUED
    api.training.CancelJob(training_pb2.CancelJobRequest(id=after.id), timeout=60)


def _alive(pids: Iterable[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def test_requests_data_parallel_cannot_run_are_refused(api: Api, mnist_dataset: datasets_pb2.Dataset) -> None:
    def code(req: object, call: object = api.training.CreateFineTuneJob) -> grpc.StatusCode:
        return rpc_code(call, req, timeout=30)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    small_batch = training_pb2.Hyperparameters(batch_size=6, lr=1e-3)
    auto_lr = training_pb2.Hyperparameters(auto_lr=True)
    assert code(_request(mnist_dataset.id, hyperparameters=small_batch,
                         resources=common_pb2.Resources(workers=4))) == invalid
    assert code(_request(mnist_dataset.id, hyperparameters=auto_lr)) == invalid
    assert code(_request(mnist_dataset.id, resources=common_pb2.Resources(workers=-1))) == invalid
    assert code(_request(mnist_dataset.id, resources=common_pb2.Resources(workers=65))) == invalid
    assert code(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.MULTI_LABEL_CLASSIFICATION, model_name="x", dataset_id=mnist_dataset.id,
        resources=TWO_WORKERS)) == invalid
    assert code(training_pb2.FindLearningRateRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, dataset_id=mnist_dataset.id, resources=TWO_WORKERS),
        api.training.FindLearningRate) == invalid
