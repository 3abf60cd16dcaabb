"""Awaiting the serving replicas: their answers, a full queue, and callers who stop waiting."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.serve.exceptions import BackPressureError

from fineserve_common.errors import ResourceExhausted
from service.errors import replica_answer


async def ask(response: Any) -> Any:
    """A DeploymentResponse's answer, as its replica method types it (a Refused is raised: replica_answer).
    Ray Serve refuses a call at once when the queue for the replicas is full (max_queued_requests):
    RESOURCE_EXHAUSTED. When the caller's deadline passes or it hangs up, the rpc wrapper cancels this
    coroutine; the request is then cancelled on the replicas too."""
    try:
        return replica_answer(await response)
    except asyncio.CancelledError:
        response.cancel()
        raise
    except BackPressureError as e:
        raise ResourceExhausted(f"the serving replicas are at capacity ({e}); retry with backoff") from e
