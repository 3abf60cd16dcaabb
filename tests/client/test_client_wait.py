"""wait(): follows WatchJob, resumes after UNAVAILABLE from the last sequence + 1, returns the final job."""

from __future__ import annotations

import io
import time

import grpc
import pytest

from fineserve.v1 import training_pb2, training_pb2_grpc
from fineserve_client import Client, JobFailed, ProgressBar, errors, jobs, progress


def _state(seq, state, reason=""):
    return training_pb2.JobEvent(
        job_id="job-1", sequence=seq, state=training_pb2.StateChange(state=state, reason=reason)
    )


def _batch(seq, epoch, batch, loss):
    return training_pb2.JobEvent(
        job_id="job-1",
        sequence=seq,
        batch=training_pb2.BatchProgress(
            phase="frozen", epoch=epoch, epochs=2, batch=batch, batches=4, loss=loss
        ),
    )


def _epoch(seq, epoch, accuracy):
    return training_pb2.JobEvent(
        job_id="job-1",
        sequence=seq,
        epoch=training_pb2.EpochMetrics(
            phase="frozen",
            epoch=epoch,
            epochs=2,
            metrics={"accuracy": accuracy, "valid_loss": 0.5},
            seconds=1.5,
        ),
    )


EVENTS = [
    _state(1, training_pb2.RUNNING),
    _batch(2, 1, 2, 0.9),
    _epoch(3, 1, 0.8),
    _batch(4, 2, 4, 0.4),
    _epoch(5, 2, 0.9),
    _state(6, training_pb2.SUCCEEDED),
]


class FlakyTraining(training_pb2_grpc.TrainingServicer):
    """Breaks the first stream with UNAVAILABLE after ``break_after`` events."""

    def __init__(self, break_after=3, final_state=training_pb2.SUCCEEDED, always_break=False, events=EVENTS):
        self.break_after = break_after
        self.final_state = final_state
        self.always_break = always_break
        self.events = events
        self.from_sequences: list[int] = []

    def WatchJob(self, request, context):
        self.from_sequences.append(request.from_sequence)
        first = len(self.from_sequences) == 1
        start = max(request.from_sequence, 1)
        for event in self.events:
            if event.sequence < start:
                continue
            if (first or self.always_break) and event.sequence > self.break_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "worker restarting")
            yield event

    def GetJob(self, request, context):
        job = training_pb2.Job(
            id=request.id,
            state=self.final_state,
            error="out of memory" if self.final_state == training_pb2.FAILED else "",
        )
        job.result.model.name, job.result.model.version = "pets", 1
        return job


def test_wait_reconnects_from_last_sequence_plus_one(serve):
    servicer = FlakyTraining(break_after=3)
    with Client(serve(servicer)) as client:
        job = client.wait("job-1", progress=False)
    assert servicer.from_sequences == [0, 4]
    assert job.state == training_pb2.SUCCEEDED
    assert job.result.model.name == "pets"


def test_wait_gives_up_after_bounded_reconnects(serve):
    servicer = FlakyTraining(break_after=1, always_break=True)
    with Client(serve(servicer)) as client, pytest.raises(errors.Unavailable):
        client.wait("job-1", progress=False, max_reconnects=1)
    assert servicer.from_sequences == [0, 2]


def test_wait_returns_failed_job_and_check_raises(serve):
    events = [_state(1, training_pb2.RUNNING), _state(2, training_pb2.FAILED, "out of memory")]
    servicer = FlakyTraining(break_after=99, final_state=training_pb2.FAILED, events=events)
    with Client(serve(servicer)) as client:
        job = client.wait("job-1", progress=False)
        assert job.state == training_pb2.FAILED and not jobs.succeeded(job) and jobs.is_terminal(job)
        with pytest.raises(JobFailed, match="out of memory") as info:
            client.wait("job-1", progress=False, check=True)
    assert info.value.job.id == "job-1" and info.value.state == "FAILED"


def test_wait_stream_ending_without_terminal_event_trusts_get_job(serve):
    servicer = FlakyTraining(break_after=99, events=EVENTS[:3])
    with Client(serve(servicer)) as client:
        assert client.wait("job-1", progress=False).state == training_pb2.SUCCEEDED
    assert servicer.from_sequences == [0]


def test_progress_without_tty_prints_a_line_per_epoch(serve):
    stream = io.StringIO()
    with Client(serve(FlakyTraining(break_after=99))) as client:
        client.wait("job-1", progress=ProgressBar(stream=stream))
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "job job-1 RUNNING"
    assert lines[1].startswith("epoch 1/2  (frozen)  accuracy 0.8  valid_loss 0.5")
    assert lines[2].startswith("epoch 2/2")
    assert lines[-1] == "job job-1 SUCCEEDED"
    assert len(lines) == 4


def test_progress_bars_use_tqdm_with_rate_and_eta():
    pytest.importorskip("tqdm")  # the [progress] extra; installed by scripts/setup.sh
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, bars=True, min_interval=0)
    for event in EVENTS[:3]:
        bar.event(event)
    bar.close()
    text = stream.getvalue()
    assert "frozen epoch 1/2" in text and "2/4" in text and "loss=0.9000" in text
    assert "batch/s" in text and "<" in text  # tqdm's rate and elapsed<remaining
    assert "epoch 1/2  (frozen)  accuracy 0.8" in text


def test_progress_without_tqdm_writes_lines_even_on_a_tty(monkeypatch):
    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, tty=True)
    assert not bar.bars
    for event in EVENTS:
        bar.event(event)
    bar.transfer(10, 10)
    bar.close()
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines()[-1] == "upload: 10 B sent"
    with pytest.raises(ImportError, match=r"fineserve-client\[progress\]"):
        ProgressBar(bars=True)


def test_disabled_progress_is_silent():
    stream = io.StringIO()
    bar = ProgressBar(enabled=False, stream=stream, tty=True)
    for event in EVENTS:
        bar.event(event)
    bar.transfer(5, 10)
    bar.close()
    assert stream.getvalue() == ""


class SilentTraining(training_pb2_grpc.TrainingServicer):
    """A job that never sends an event."""

    def WatchJob(self, request, context):
        while context.is_active():
            time.sleep(0.02)
        return
        yield  # pragma: no cover


def test_wait_timeout_raises_deadline_exceeded(serve):
    with Client(serve(SilentTraining())) as client, pytest.raises(errors.DeadlineExceeded):
        client.wait("job-1", progress=False, timeout=0.3)
