"""One exception for every refusal the API makes, turned into a gRPC status at the servicer boundary."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from service.metrics import observe

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ApiError], tuple[grpc.StatusCode, str]]:
        """Picklable, so that one raised in the job coordinator actor reaches the front door intact."""
        return ApiError, (self.code, self.message)


def invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, message)


def replica_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A serving replica's answer, or its {"error": {code, message}} raised as the gRPC status it names."""
    if "error" in answer:
        raise ApiError(grpc.StatusCode[answer["error"]["code"]], answer["error"]["message"])
    return answer


def unimplemented(what: str, issue: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNIMPLEMENTED,
                    f"{what} is not implemented yet (planned: {issue}); see the README for what works")


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Servicer method wrapper: ApiError -> its status; the caller's deadline passed -> DEADLINE_EXCEEDED (the
    work is cancelled, replica calls included); anything unexpected -> INTERNAL, logged. Every call is counted
    in the metrics by status code, with its latency."""

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            async with asyncio.timeout(context.time_remaining()):
                return await method(self, request, context)
        except ApiError as e:
            code = e.code
            await context.abort(e.code, e.message)
        except TimeoutError:
            if not _deadline_passed(context):
                code = grpc.StatusCode.INTERNAL  # a timeout of our own, not the caller's deadline
                log.exception("unexpected timeout in %s", method.__name__)
                await context.abort(code, f"internal timeout in {method.__name__}; see server log")
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            await context.abort(code, f"{method.__name__} did not finish within the caller's deadline")
        except grpc.aio.AbortError:
            code = grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:  # gRPC cancels the handler when the caller hangs up or its deadline passes
            code = grpc.StatusCode.DEADLINE_EXCEEDED if _deadline_passed(context) else grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see server log")
        finally:
            observe(method.__name__, code.name, time.perf_counter() - start)

    return unary


def _deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


def rpc_stream(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """Like rpc, for server-streaming methods."""

    @functools.wraps(method)
    async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in method(self, request, context):
                yield item
        except ApiError as e:
            await context.abort(e.code, e.message)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see server log")

    return stream
