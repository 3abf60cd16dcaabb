"""Helpers to check a ``Job``'s state.

``Client.wait`` returns the final ``Job`` whatever its terminal state (a failed or cancelled job is a
normal outcome, not a failed call); use these helpers, or ``wait(..., check=True)``, to turn FAILED and
CANCELLED into a :class:`~fineserve_client.errors.JobFailed` exception (``fine_tune`` does by default).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fineserve.v1 import training_pb2

from .errors import JobCancelled, JobFailed

__all__ = ["TERMINAL_STATES", "check_job", "is_terminal", "state_name", "succeeded"]

JobState = training_pb2.JobState
TERMINAL_STATES = frozenset({training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED})


J = TypeVar("J")


def _state(job_or_state: Any) -> int:
    """The state of a :class:`~fineserve_client.Job`, a ``Job`` message, or a ``JobState`` value."""
    return int(job_or_state if isinstance(job_or_state, int) else job_or_state.state)


def state_name(job_or_state: Any) -> str:
    """``"RUNNING"`` etc. for a job (typed or message) or a ``JobState`` value."""
    return training_pb2.JobState.Name(_state(job_or_state))


def is_terminal(job_or_state: Any) -> bool:
    """True when the job (or state) is SUCCEEDED, FAILED or CANCELLED."""
    return _state(job_or_state) in TERMINAL_STATES


def succeeded(job: Any) -> bool:
    """True when the job ended SUCCEEDED."""
    return _state(job) == training_pb2.SUCCEEDED


def check_job(job: J) -> J:
    """Return ``job`` unless it ended FAILED (raise :class:`JobFailed`) or CANCELLED (:class:`JobCancelled`)."""
    state = _state(job)
    if state == training_pb2.CANCELLED:
        raise JobCancelled(job)
    if state == training_pb2.FAILED:
        raise JobFailed(job)
    return job
