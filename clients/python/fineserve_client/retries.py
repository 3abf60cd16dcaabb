"""Retrying unary calls that failed for a passing reason (UNAVAILABLE, RESOURCE_EXHAUSTED) with exponential
backoff and full jitter, inside the call's one deadline.

Why not gRPC's own retry service config: it is set per method on the channel, but whether a creation may be
repeated depends on the request (it may when it carries a ``request_id``, which the server deduplicates), and
gRPC caps attempts at 5. The SDK makes every unary call through one place (``Connection._send``), so the policy
is applied there, for the synchronous and the asyncio client alike.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

__all__ = ["RETRYABLE_CODES", "RetryPolicy"]

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
"""The server (or the network) says "not now": the same request may succeed a moment later."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a retryable call is repeated.

    ``max_attempts`` counts the first try (1: never retry). Before attempt ``n + 1`` the client sleeps a
    uniformly random time in ``[0, min(max_backoff, initial_backoff * multiplier ** (n - 1))]`` ("full
    jitter": clients that failed together do not come back together). The call's deadline (the client's
    ``timeout``) covers every attempt and sleep: when it would pass during a sleep, the last error is raised.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    codes: frozenset[grpc.StatusCode] = RETRYABLE_CODES
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def backoff_cap(self, attempt: int) -> float:
        """The longest sleep after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))

    def backoff(self, attempt: int) -> float:
        """A sleep drawn with full jitter after failed attempt number ``attempt``."""
        return self.rng.uniform(0.0, self.backoff_cap(attempt))

    def next_delay(self, error: grpc.RpcError, attempt: int, deadline: float | None,
                   clock: Callable[[], float] = time.monotonic) -> float | None:
        """The sleep before retrying after ``error`` ended attempt ``attempt``, or ``None`` to give up (a code
        not worth retrying, no attempts left, or the deadline would pass before the next attempt)."""
        code = error.code() if callable(getattr(error, "code", None)) else None
        if code not in self.codes or attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt)
        if deadline is not None and clock() + delay >= deadline:
            return None
        return delay


NO_RETRIES = RetryPolicy(max_attempts=1)
