"""How a failed Ray Train run maps onto the job manager's outcomes: a dead, hung or cut-off rank is a lost worker
(the job resumes from its checkpoint); a rank's own error fails the job with that error."""

from __future__ import annotations

import pytest
import ray.exceptions
from ray.train import WorkerGroupError
from ray.train.v2._internal.exceptions import (
    UserExceptionWithTraceback,
    WorkerHealthCheckFailedError,
    WorkerHealthCheckTimeoutError,
)
from torch.distributed import DistBackendError

from worker.data_parallel import _lost_or_raise
from worker.engine import DatasetError
from worker.jobs import WorkerLost


def _raised(failures: dict[int, Exception]) -> BaseException:
    with pytest.raises(Exception) as info:
        _lost_or_raise(WorkerGroupError("test", failures))
    return info.value


def _user(e: Exception) -> UserExceptionWithTraceback:
    return UserExceptionWithTraceback(e, traceback_str=f"Traceback: {e!r}")


@pytest.mark.parametrize("failure", [
    WorkerHealthCheckFailedError("rank 1 died", failure=ray.exceptions.ActorDiedError()),
    WorkerHealthCheckTimeoutError("rank 1 hung"),
    _user(DistBackendError("Connection closed by peer")),
], ids=["died", "hung", "peer-gone"])
def test_a_lost_rank_is_a_lost_worker(failure: Exception) -> None:
    error = _raised({0: _user(RuntimeError("collateral")), 1: failure})
    assert isinstance(error, WorkerLost) and "rank 1" in str(error)


def test_a_rank_s_own_error_fails_the_job_with_it() -> None:
    error = _raised({1: _user(ValueError("later")), 0: _user(DatasetError("no images in train/"))})
    assert isinstance(error, DatasetError) and str(error) == "no images in train/"
