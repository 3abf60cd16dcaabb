"""Helpers to check a ``Job``'s state.

``Client.wait`` returns the final ``Job`` whatever its terminal state (a failed or cancelled job is a
normal outcome, not a failed call); use these helpers, or ``wait(..., check=True)``, to turn FAILED and
CANCELLED into a :class:`~fineserve_client.errors.JobFailed` exception.
"""

from __future__ import annotations

from fineserve.v1 import training_pb2

from .errors import JobFailed

__all__ = ["TERMINAL_STATES", "check_job", "is_terminal", "state_name", "succeeded"]

JobState = training_pb2.JobState
TERMINAL_STATES = frozenset({training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED})


def state_name(job_or_state: training_pb2.Job | int) -> str:
    """``"RUNNING"`` etc. for a ``Job`` or a ``JobState`` value."""
    state = job_or_state.state if isinstance(job_or_state, training_pb2.Job) else job_or_state
    return training_pb2.JobState.Name(state)


def is_terminal(job_or_state: training_pb2.Job | int) -> bool:
    """True when the job (or state) is SUCCEEDED, FAILED or CANCELLED."""
    state = job_or_state.state if isinstance(job_or_state, training_pb2.Job) else job_or_state
    return state in TERMINAL_STATES


def succeeded(job: training_pb2.Job) -> bool:
    """True when the job ended SUCCEEDED."""
    return job.state == training_pb2.SUCCEEDED


def check_job(job: training_pb2.Job) -> training_pb2.Job:
    """Return ``job`` unless it ended FAILED or CANCELLED, in which case raise :class:`JobFailed`."""
    if job.state in (training_pb2.FAILED, training_pb2.CANCELLED):
        raise JobFailed(job)
    return job
