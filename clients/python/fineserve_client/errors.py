"""Typed exceptions for fineserve: one class per gRPC status code the service uses.

Every :class:`fineserve_client.Client` method turns a ``grpc.RpcError`` into one of these through
:func:`from_rpc_error`; the original error stays available as ``__cause__``.
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FineserveError",
    "Internal",
    "InvalidArgument",
    "JobCancelled",
    "JobFailed",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "from_rpc_error",
]


class FineserveError(Exception):
    """A call to the service failed with a gRPC status.

    Attributes:
        code: the ``grpc.StatusCode``.
        message: the human message the server sent (gRPC calls it the status "details").
        details: the call's trailing metadata as a dict (extra debugging information; often empty).
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        code: grpc.StatusCode | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message: str = message
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(f"{self.code.name}: {message}")


class InvalidArgument(FineserveError):
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(FineserveError):
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(FineserveError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(FineserveError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(FineserveError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(FineserveError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(FineserveError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unimplemented(FineserveError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(FineserveError):
    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(FineserveError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(FineserveError):
    default_code = grpc.StatusCode.CANCELLED


class Internal(FineserveError):
    default_code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[FineserveError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        Unimplemented,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Internal,
    )
}


def from_rpc_error(error: grpc.RpcError) -> FineserveError:
    """Return the :class:`FineserveError` subclass matching ``error``'s status code (the base class for
    codes without a subclass, such as UNKNOWN or ABORTED)."""
    code = _call_attr(error, "code") or grpc.StatusCode.UNKNOWN
    message = _call_attr(error, "details") or ""
    trailing = _call_attr(error, "trailing_metadata") or ()
    details: dict[str, Any] = {}
    for item in trailing:
        key, value = (item.key, item.value) if hasattr(item, "key") else item
        details[key] = value
    cls = _BY_CODE.get(code, FineserveError)
    return cls(message, code=code, details=details)


def _call_attr(error: grpc.RpcError, name: str) -> Any:
    attr = getattr(error, name, None)
    if attr is None:
        return None
    try:
        return attr()
    except Exception:  # a half-built error object must not hide the original failure
        return None


class JobFailed(Exception):
    """Raised by ``fine_tune`` (unless ``check=False``), ``wait(..., check=True)`` and
    :func:`fineserve_client.jobs.check_job` when a job ended FAILED; :class:`JobCancelled`, a subclass, when it
    ended CANCELLED. Not a gRPC error: the calls succeeded, the job did not.

    Attributes:
        job: the final :class:`~fineserve_client.Job`; ``job.error`` says why.
        state: ``"FAILED"`` or ``"CANCELLED"``.
        reason: the job's message (``job.error``).
    """

    def __init__(self, job: Any) -> None:
        from fineserve.v1 import training_pb2

        self.job = job
        self.state: str = training_pb2.JobState.Name(job.state)
        self.reason: str = job.error
        super().__init__(f"job {job.id} {self.state}" + (f": {job.error}" if job.error else ""))


class JobCancelled(JobFailed):
    """The job ended CANCELLED (someone called ``cancel_job``, or the service gave up on it)."""
