"""Awaiting the serving replicas: their answers, a full queue, answers too large to send, and callers who stop
waiting."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from ray.serve.exceptions import BackPressureError

from fineserve_common.errors import ResourceExhausted
from service.errors import replica_answer

Reply = TypeVar("Reply", bound=Message)  # an RPC's response
SMALLER = ("send fewer or smaller images (Explain's overlays and Segment's masks are PNGs at each image's size, "
           "and include_probabilities adds one per class), or ask the operator for a larger max_message_bytes")


async def ask(response: Any, limit: int) -> Any:
    """A DeploymentResponse's answer, as its replica method types it (a Refused is raised: replica_answer).
    Ray Serve refuses a call at once when the queue for the replicas is full (max_queued_requests), and its
    transport refuses an answer over limit bytes (service/ray_serving.py sets that limit): both
    RESOURCE_EXHAUSTED. When the caller's deadline passes or it hangs up, the rpc wrapper cancels this
    coroutine; the request is then cancelled on the replicas too."""
    try:
        return replica_answer(await response)
    except asyncio.CancelledError:
        response.cancel()
        raise
    except BackPressureError as e:
        raise ResourceExhausted(f"the serving replicas are at capacity ({e}); retry with backoff") from e
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        raise ResourceExhausted(f"the answer is over max_message_bytes={limit}; {SMALLER}") from e


def within(answer: Reply, limit: int) -> Reply:
    """The answer, or RESOURCE_EXHAUSTED when it is over limit bytes (max_message_bytes: the front door could not
    send it, and the SDK could not receive it)."""
    size = answer.ByteSize()
    if size > limit:
        raise ResourceExhausted(f"the answer is {size} bytes, over max_message_bytes={limit}; {SMALLER}")
    return answer
