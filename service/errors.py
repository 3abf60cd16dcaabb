"""The servicer boundary: fineserve_common's errors, raised anywhere below it, become gRPC statuses here only."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from fineserve_common.answers import Refused
from fineserve_common.errors import FineserveError
from fineserve_common.names import shorten
from service.metrics import observe

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_STATUS_MESSAGE_BYTES = 2000
"""A status message travels percent-encoded in a trailer, which gRPC caps (8 KiB by default): a longer one would
turn the answer into RESOURCE_EXHAUSTED "metadata size exceeds". Messages quote callers' values clipped
(fineserve_common.names.clip); this bounds the whole message, whatever raised it (2000 UTF-8 bytes are at most
6000 encoded)."""


def status_message(error: FineserveError) -> str:
    """The error's message, its middle cut out while it is over MAX_STATUS_MESSAGE_BYTES in UTF-8."""
    text = error.message
    while len(text.encode()) > MAX_STATUS_MESSAGE_BYTES:
        text = shorten(text, min(len(text) // 2, MAX_STATUS_MESSAGE_BYTES))
    return text


def replica_answer(answer: T | Refused) -> T:
    """A serving replica's answer, or its Refused raised as the error its status names."""
    if isinstance(answer, Refused):
        raise answer.error()
    return answer


def status_code(error: FineserveError) -> grpc.StatusCode:
    """The gRPC code of an error's status name (UNKNOWN for a name gRPC does not have)."""
    return grpc.StatusCode.__members__.get(error.status, grpc.StatusCode.UNKNOWN)


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Servicer method wrapper: a FineserveError -> the status it names; the caller's deadline passed ->
    DEADLINE_EXCEEDED (the work is cancelled, replica calls included); anything unexpected -> INTERNAL, logged.
    Every call is counted in the metrics by status code, with its latency."""

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        deadline = asyncio.timeout(context.time_remaining())
        try:
            async with deadline:
                return await method(self, request, context)
        except FineserveError as e:
            code = status_code(e)
            await context.abort(code, status_message(e))
        except TimeoutError:
            if not deadline.expired():
                code = grpc.StatusCode.INTERNAL  # a timeout of our own, not the caller's deadline
                log.exception("unexpected timeout in %s", method.__name__)
                await context.abort(code, f"internal timeout in {method.__name__}; see server log")
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            try:
                await context.abort(code, f"{method.__name__} did not finish within the caller's deadline")
            except grpc.aio.InternalError:  # gRPC ended the call at its deadline first: nothing is left to send,
                raise asyncio.CancelledError() from None  # and a cancelled handler is what gRPC expects then
        except grpc.aio.AbortError:
            code = grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:  # gRPC cancels the handler when the caller hangs up or its deadline passes
            code = grpc.StatusCode.DEADLINE_EXCEEDED if deadline_passed(context) else grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see server log")
        finally:
            observe(method.__name__, code.name, time.perf_counter() - start)

    return unary


DEADLINE_SLACK_S = 0.1
"""gRPC ends a call at its deadline up to tens of milliseconds before time_remaining() reaches 0."""


def deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    """Whether a call gRPC ended ended at its deadline (else its caller hung up or the server is stopping: gRPC's
    own `cancelled()` says False in each case, so the clock is what tells them apart)."""
    remaining = context.time_remaining()
    return remaining is not None and remaining <= DEADLINE_SLACK_S


def rpc_stream(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """Like rpc, for server-streaming methods."""

    @functools.wraps(method)
    async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in method(self, request, context):
                yield item
        except FineserveError as e:
            await context.abort(status_code(e), status_message(e))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see server log")

    return stream
