"""Serving statistics of every replica, gathered in one named Ray actor that the front door reads for its
Prometheus metrics and for GetModel's "loaded" answer. Ray Serve has no call that reaches every replica, and
Ray's own metrics need its dashboard agent and a second port; one small actor needs neither."""

from __future__ import annotations

import bisect
import time
from typing import Any

STATS_ACTOR = "fineserve-serving-stats"
STATS_NAMESPACE = "fineserve"
# Images per forward pass: the histogram's upper bounds.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Replicas report at least every REPORT_S (their forward passes too: no actor call on a request's path);
# one silent for STALE_S is gone (scaled down or dead).
REPORT_S = 1.0
STALE_S = 15.0


class ServingStats:
    """Plain class; ray.remote(ServingStats) makes it the actor (so it also works, and is tested, in-process)."""

    def __init__(self) -> None:
        self._replicas: dict[str, dict[str, Any]] = {}
        self._passes: dict[str, dict[str, Any]] = {}

    def replica(self, replica: str, models: list[str], held_max: int, max_models: int) -> None:
        """A replica's models in memory now (loaded or loading) and the most it ever held at once."""
        self._replicas[replica] = {"models": sorted(models), "held_max": held_max, "max_models": max_models,
                                   "seen": time.monotonic()}

    def forward_passes(self, passes: list[tuple[str, int]]) -> None:
        """(method, images) of each forward pass a replica ran since its last report (several callers'
        requests merged into one pass)."""
        for method, images in passes:
            h = self._passes.setdefault(method, {"buckets": [0] * (len(BATCH_BUCKETS) + 1), "count": 0, "sum": 0})
            h["buckets"][bisect.bisect_left(BATCH_BUCKETS, images)] += 1
            h["count"] += 1
            h["sum"] += images

    def snapshot(self) -> dict[str, Any]:
        """{"replicas": {id: {models, held_max, max_models}}, "passes": {method: {buckets: [(le, cumulative)],
        count, sum}}}; replicas not heard from for STALE_S are dropped."""
        now = time.monotonic()
        self._replicas = {r: v for r, v in self._replicas.items() if now - v["seen"] < STALE_S}
        passes = {}
        for method, h in self._passes.items():
            cumulative, total = [], 0
            for le, n in zip([*map(float, BATCH_BUCKETS), float("inf")], h["buckets"], strict=True):
                total += n
                cumulative.append((le, total))
            passes[method] = {"buckets": cumulative, "count": h["count"], "sum": h["sum"]}
        return {"replicas": {r: {k: v[k] for k in ("models", "held_max", "max_models")}
                             for r, v in self._replicas.items()}, "passes": passes}
