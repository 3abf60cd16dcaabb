"""The fineserve command's exit statuses, in one table: the gRPC status codes each stands for (the one mapping
from codes to statuses) and the words ``--help`` and the README show, so code and documentation cannot drift.
A script can tell a typo (2) from a missing id (3), a refusal it must fix (4), a server to retry later (5) and a
job that ran and failed (6)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import grpc

C = grpc.StatusCode


@dataclass(frozen=True)
class ExitStatus:
    number: int
    meaning: str
    codes: tuple[grpc.StatusCode, ...] = ()


OK = ExitStatus(0, "success")
OTHER = ExitStatus(1, "any other error: INTERNAL, UNKNOWN, CANCELLED, DATA_LOSS; a local file that cannot be "
                      "read or written", (C.INTERNAL, C.UNKNOWN, C.CANCELLED, C.DATA_LOSS))
USAGE = ExitStatus(2, "usage: a bad option or value, found before any call to the server")
NOT_FOUND = ExitStatus(3, "not found: the data set, model or job does not exist (NOT_FOUND)", (C.NOT_FOUND,))
REFUSED = ExitStatus(4, "refused: the server would not take the request as it is, or not from you: "
                        "INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE, ALREADY_EXISTS, RESOURCE_EXHAUSTED (a "
                        "limit the message names), UNIMPLEMENTED, PERMISSION_DENIED, UNAUTHENTICATED",
                     (C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.OUT_OF_RANGE, C.ALREADY_EXISTS,
                      C.RESOURCE_EXHAUSTED, C.UNIMPLEMENTED, C.PERMISSION_DENIED, C.UNAUTHENTICATED))
UNAVAILABLE = ExitStatus(5, "unavailable: no answer to work with, worth retrying later: UNAVAILABLE (nothing "
                            "listening, TLS on one side only, server shutting down), DEADLINE_EXCEEDED, ABORTED",
                         (C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.ABORTED))
JOB_FAILED = ExitStatus(6, "job failed: the job ended FAILED or CANCELLED (train, lr-find, watch)")
INTERRUPTED = ExitStatus(130, "interrupted (Ctrl-C); a job keeps running on the server")

STATUSES = (OK, OTHER, USAGE, NOT_FOUND, REFUSED, UNAVAILABLE, JOB_FAILED, INTERRUPTED)
_BY_CODE = {code: status.number for status in STATUSES for code in status.codes}


def for_code(code: grpc.StatusCode) -> int:
    """The exit status of a call that failed with ``code``."""
    return _BY_CODE.get(code, OTHER.number)


def epilog() -> str:
    """The exit statuses as ``--help`` lists them."""
    return "exit status:\n" + "\n".join(textwrap.fill(f"  {s.number:<3}  {s.meaning}", 100, subsequent_indent=" " * 7)
                                         for s in STATUSES)
