"""Following a job to its end across broken streams: ``watch_job``, ``wait`` and ``fine_tune`` of the blocking
:class:`~fineserve_client.Client`. What to do with each event, break and outcome lives in :class:`Follow`, which
the asyncio client (``aio.py``) drives with the same rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc

from fineserve.v1 import training_pb2

from .connection import Connection
from .errors import DeadlineExceeded, Unavailable, from_rpc_error
from .jobs import check_job, is_terminal
from .progress import ProgressBar
from .records import Job

_FIRST_RETRY_S = 0.25
_MAX_RETRY_S = 5.0


class Follow:
    """Following one job: the deadline of the whole wait, the next event to ask for, the reconnects in a
    row, the progress bar."""

    def __init__(self, id: str, progress: bool | ProgressBar, timeout: float | None, max_reconnects: int) -> None:
        self.id = id
        self.bar = progress if isinstance(progress, ProgressBar) else ProgressBar(enabled=bool(progress))
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.max_reconnects = max_reconnects
        self.next_sequence = 0
        self.failures = 0

    def request(self) -> training_pb2.WatchJobRequest:
        return training_pb2.WatchJobRequest(id=self.id, from_sequence=self.next_sequence)

    def remaining(self) -> float | None:
        """Seconds left of the wait; ``DeadlineExceeded`` once none are."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"job {self.id} did not finish within {self.timeout} s")
        return left

    def seen(self, event: training_pb2.JobEvent) -> bool:
        """Show the event; True when it puts the job in a terminal state."""
        self.next_sequence = event.sequence + 1
        self.failures = 0
        self.bar.event(event)
        return event.WhichOneof("event") == "state" and is_terminal(event.state.state)

    def stream_ended(self, job: Job) -> None:
        """The stream ended without a terminal event: trust the job record, and resume when it is not done."""
        if not is_terminal(job):
            raise Unavailable(f"the event stream of job {self.id} ended before the job finished")

    def broke(self, error: Unavailable) -> float:
        """The seconds to wait before resuming after ``error``; re-raises it after too many in a row."""
        self.failures += 1
        if self.failures > self.max_reconnects:
            raise error
        delay = min(_FIRST_RETRY_S * 2 ** (self.failures - 1), _MAX_RETRY_S)
        return delay if self.deadline is None else min(delay, max(self.deadline - time.monotonic(), 0.0))

    @staticmethod
    def outcome(job: Job, check: bool) -> Job:
        return check_job(job) if check else job


WAIT_DOC = """Follow the job until it is SUCCEEDED, FAILED or CANCELLED and return the final :class:`Job`.

        The final job is returned whatever its state: a failed job is an outcome, not a failed call. Check it
        with :mod:`fineserve_client.jobs` or pass ``check=True`` to raise :class:`~fineserve_client.JobFailed`
        (:class:`~fineserve_client.JobCancelled` for CANCELLED) with the job's message.

        ``progress`` shows a progress bar on stderr (tqdm's, with rate and ETA, when it is installed). When the
        event stream breaks with UNAVAILABLE the watch resumes from the event after the last one seen, up to
        ``max_reconnects`` times in a row. ``timeout`` (seconds) bounds the whole wait (``DeadlineExceeded``).
        """

FINE_TUNE_DOC = """``create_fine_tune_job(dataset_id, model_name, **job_options)`` then ``wait``: returns the final
        :class:`Job`, and raises :class:`~fineserve_client.JobFailed` (``JobCancelled`` when cancelled) with the
        job's message unless it succeeded; ``check=False`` returns the failed job instead."""


class Following(Connection):
    def watch_job(
        self, id: str, from_sequence: int = 0, *, timeout: float | None = None
    ) -> Iterator[training_pb2.JobEvent]:
        """Yield the job's events from ``from_sequence`` on (0: from the first); the iterator ends after
        the event that puts the job in a terminal state. No deadline unless ``timeout`` is given."""
        call = self._training.WatchJob(training_pb2.WatchJobRequest(id=id, from_sequence=from_sequence),
                                       timeout=timeout, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()  # a no-op when the stream has ended; stops it when the caller stopped early

    def wait(self, id: str, progress: bool | ProgressBar = True, timeout: float | None = None, *,
             check: bool = False, max_reconnects: int = 5) -> Job:
        follow = Follow(id, progress, timeout, max_reconnects)
        try:
            while True:
                try:
                    for event in self.watch_job(id, follow.next_sequence, timeout=follow.remaining()):
                        if follow.seen(event):
                            break
                    else:
                        follow.stream_ended(self.get_job(id))  # type: ignore[attr-defined]
                    break
                except Unavailable as e:
                    time.sleep(follow.broke(e))
        finally:
            follow.bar.close()
        return follow.outcome(self.get_job(id), check)  # type: ignore[attr-defined]

    def fine_tune(self, dataset_id: str, model_name: str, *, progress: bool | ProgressBar = True,
                  timeout: float | None = None, check: bool = True, **job_options: Any) -> Job:
        job = self.create_fine_tune_job(dataset_id, model_name, **job_options)  # type: ignore[attr-defined]
        return self.wait(job.id, progress=progress, timeout=timeout, check=check)

    wait.__doc__ = WAIT_DOC
    fine_tune.__doc__ = FINE_TUNE_DOC
