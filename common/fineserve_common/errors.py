"""The refusals and failures every layer raises. Each names the gRPC status it becomes, by name only: the
servicers map it to a code (no grpc import here), so a store, a registry or a checker never speaks gRPC."""

from __future__ import annotations


class FineserveError(Exception):
    """Base of every refusal; `status` is the name of the gRPC status code a servicer answers with."""

    status = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type[FineserveError], tuple[str]]:
        """Picklable with its class, so one raised in the coordinator actor reaches the front door intact."""
        return type(self), (self.message,)


class InvalidArgument(FineserveError, ValueError):
    """The caller's input is wrong: a field out of its bounds, an undecodable image, the wrong task. A
    ValueError too, so that plain-Python callers (the engine's configs in a notebook) catch it as one."""

    status = "INVALID_ARGUMENT"


class NotFound(FineserveError):
    status = "NOT_FOUND"


class AlreadyExists(FineserveError):
    status = "ALREADY_EXISTS"


class FailedPrecondition(FineserveError):
    """The request is well formed but the system is not in a state to take it (a cluster without the GPUs)."""

    status = "FAILED_PRECONDITION"


class ResourceExhausted(FineserveError):
    """A limit (size, count, queue) was reached; the message names it."""

    status = "RESOURCE_EXHAUSTED"


class Unimplemented(FineserveError):
    status = "UNIMPLEMENTED"

    @classmethod
    def planned(cls, what: str, issue: str) -> Unimplemented:
        return cls(f"{what} is not implemented yet (planned: {issue}); see the README for what works")


class Unavailable(FineserveError):
    status = "UNAVAILABLE"


class Internal(FineserveError):
    status = "INTERNAL"


BY_STATUS: dict[str, type[FineserveError]] = {
    cls.status: cls for cls in (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, ResourceExhausted,
                                Unimplemented, Unavailable, Internal)}


def from_status(status: str, message: str) -> FineserveError:
    """The error a status name and message stand for (a replica's answer, say); unknown names are INTERNAL."""
    return BY_STATUS.get(status, Internal)(message)
