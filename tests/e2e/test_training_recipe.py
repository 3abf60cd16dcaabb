"""The training recipe through the service: LR range test jobs, automatic LR, per-batch LR/momentum events,
checkpoints, a job that survives its worker being killed, and queueing (a killed front door:
test_cluster_front_doors)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from e2e.helpers import TERMINAL, Api, wait_for
from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_client.plots import plot_lr_finder, plot_training

PNG = b"\x89PNG\r\n\x1a\n"


def _events(api: Api, job_id: str) -> list[training_pb2.JobEvent]:
    return list(api.training.WatchJob(training_pb2.WatchJobRequest(id=job_id), timeout=120))


def test_find_learning_rate_job_and_plot(api: Api, mnist_dataset: datasets_pb2.Dataset, tmp_path: Path) -> None:
    job = api.training.FindLearningRate(training_pb2.FindLearningRateRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, arch="resnet18", dataset_id=mnist_dataset.id,
        base=training_pb2.BaseModel(random_init=True), num_batches=40,
        hyperparameters=training_pb2.Hyperparameters(image_size=32, batch_size=16)), timeout=30)
    job = wait_for(api, job.id, TERMINAL)
    assert job.state == training_pb2.SUCCEEDED, job.error
    finder = job.result.lr_finder
    assert 5 <= len(finder.points) <= 40
    lrs = [p.lr for p in finder.points]
    assert lrs == sorted(lrs) and lrs[0] >= 1e-7
    assert set(finder.suggestions) >= {"valley", "steepest", "minimum_div_10"}
    assert all(lrs[0] <= v <= lrs[-1] for v in finder.suggestions.values())
    assert any(e.batch.phase == "lr_find" for e in _events(api, job.id) if e.WhichOneof("event") == "batch")
    plot_lr_finder(job, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes().startswith(PNG)


def test_auto_lr_records_the_range_test_and_the_choice(api: Api, mnist_dataset: datasets_pb2.Dataset,
                                                        tmp_path: Path) -> None:
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, model_name="auto-lr", arch="resnet18",
        dataset_id=mnist_dataset.id, base=training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(epochs=1, image_size=32, auto_lr=True)), timeout=30)
    job = wait_for(api, job.id, TERMINAL)
    assert job.state == training_pb2.SUCCEEDED, job.error
    assert job.result.lr_finder.points
    # a random body trains at the range test's minimum / 10 (the valley sits far below the best rate there)
    assert job.result.chosen_lr == job.result.lr_finder.suggestions["minimum_div_10"]
    batches = [e.batch for e in _events(api, job.id) if e.WhichOneof("event") == "batch"]
    trained = [b for b in batches if b.phase != "lr_find"]
    assert trained and max(b.lr for b in trained) <= job.result.chosen_lr * 1.0001
    assert all(0 < b.momentum < 1 and len(b.group_lrs) == 3 for b in trained)
    plot_training(_events(api, job.id), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)


def test_killed_then_hung_worker_resumes_from_its_checkpoints(api: Api, mnist_dataset: datasets_pb2.Dataset) -> None:
    """Attempt 1's worker is killed after its first checkpoint (Ray reports it dead); attempt 2's is stopped
    (SIGSTOP: alive but silent) after its next one, so only the lease (the server's --job-lease-seconds) finds it."""
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, model_name="survivor", arch="resnet18",
        dataset_id=mnist_dataset.id, base=training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(freeze_epochs=0, epochs=3, image_size=32)), timeout=30)
    pids: dict[int, int] = {}
    for ev in api.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=600):
        kind = ev.WhichOneof("event")
        if kind == "log" and " worker pid " in ev.log.message:  # "attempt N: worker pid P on host"
            words = ev.log.message.split()
            pids[int(words[1].rstrip(":"))] = int(words[4])
        if kind == "checkpoint" and ev.checkpoint.epoch == 1 and 1 in pids and 2 not in pids:
            os.kill(pids[1], signal.SIGKILL)
        if kind == "checkpoint" and ev.checkpoint.epoch == 2 and 2 in pids:
            os.kill(pids[2], signal.SIGSTOP)
            break
    job = wait_for(api, job.id, TERMINAL)
    assert job.state == training_pb2.SUCCEEDED, job.error
    assert job.attempts == 3
    with contextlib.suppress(ProcessLookupError):
        os.kill(pids[2], signal.SIGKILL)  # in case the lease's kill has not landed: never leave it stopped
    events = _events(api, job.id)
    reasons = [e.state.reason for e in events if e.WhichOneof("event") == "state"]
    lost = [r for r in reasons if r.startswith("worker lost")]
    assert len(lost) == 2 and "no heartbeat" not in lost[0] and "no heartbeat for 20 s" in lost[1], reasons
    logs = [e.log.message for e in events if e.WhichOneof("event") == "log"]
    assert [m for m in logs if "resumed from checkpoint" in m] == \
        ["resumed from checkpoint after epoch 1", "resumed from checkpoint after epoch 2"], logs
    epochs = [e.epoch.epoch for e in events if e.WhichOneof("event") == "epoch"]
    assert sorted(set(epochs)) == [1, 2, 3] and job.result.epochs_trained == 3


def _tiny_job(api: Api, dataset: datasets_pb2.Dataset, name: str, epochs: int) -> training_pb2.Job:
    return api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, model_name=name, arch="resnet18", dataset_id=dataset.id,
        base=training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(freeze_epochs=0, epochs=epochs, image_size=28)), timeout=30)


def test_a_job_waits_in_queue_while_another_holds_the_cluster(api: Api, mnist_dataset: datasets_pb2.Dataset) -> None:
    """Each job asks for every CPU of the test server's local Ray, so there is room for one at a time."""
    first = _tiny_job(api, mnist_dataset, "queue-first", epochs=1)
    second = _tiny_job(api, mnist_dataset, "queue-second", epochs=1)
    assert second.state == training_pb2.QUEUED and second.queue_position >= 1
    wait_for(api, first.id, {training_pb2.RUNNING, *TERMINAL})
    waiting = api.training.GetJob(training_pb2.GetJobRequest(id=second.id))
    assert waiting.state == training_pb2.QUEUED and waiting.queue_position >= 1
    first, second = wait_for(api, first.id, TERMINAL), wait_for(api, second.id, TERMINAL)
    assert first.state == second.state == training_pb2.SUCCEEDED, (first.error, second.error)
    assert second.queue_position == 0
    assert second.started_at.ToNanoseconds() >= first.finished_at.ToNanoseconds() - 1_000_000_000
