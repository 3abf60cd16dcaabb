"""Prometheus metrics of the front door: its own calls, plus what the serving replicas and the job store
report, read when Prometheus scrapes (so a scrape sees every replica, not only this process)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from fineserve.v1 import training_pb2

log = logging.getLogger(__name__)

REQUESTS = Counter("fineserve_requests", "gRPC calls answered, by method and status code", ["method", "code"])
LATENCY = Histogram("fineserve_request_seconds", "Time to answer a gRPC call, by method", ["method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))


def observe(method: str, code: str, seconds: float) -> None:
    REQUESTS.labels(method, code).inc()
    LATENCY.labels(method).observe(seconds)


class ServingCollector(Collector):
    """stats() is the serving stats actor's snapshot (worker/serving_stats.py); jobs() the QUEUED and RUNNING
    jobs of the store."""

    def __init__(self, stats: Callable[[], dict[str, Any]], jobs: Callable[[], list[training_pb2.Job]]) -> None:
        self._stats = stats
        self._jobs = jobs

    def collect(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily("fineserve_jobs", "Fine-tune and LR-finder jobs by state (active ones)",
                                 labels=["state"])
        states = [training_pb2.QUEUED, training_pb2.RUNNING]
        active = [j.state for j in self._jobs()]
        for state in states:
            jobs.add_metric([training_pb2.JobState.Name(state)], active.count(state))
        yield jobs
        try:
            snap = self._stats()
        except Exception as e:  # a scrape must not fail because Ray is slow; the gap shows in the graphs
            log.warning("serving stats unavailable for this scrape: %s", e)
            return
        loaded = GaugeMetricFamily("fineserve_models_loaded", "Models in memory (or loading) per serving replica",
                                   labels=["replica"])
        held_max = GaugeMetricFamily("fineserve_models_loaded_max",
                                     "The most models a serving replica ever held at once", labels=["replica"])
        per_model = GaugeMetricFamily("fineserve_model_replicas",
                                      "Serving replicas holding a model (<tenant>/<name>/<version>) in memory",
                                      labels=["model"])
        holders: dict[str, int] = {}
        for replica, r in snap["replicas"].items():
            loaded.add_metric([replica], len(r["models"]))
            held_max.add_metric([replica], r["held_max"])
            for model in r["models"]:
                holders[model] = holders.get(model, 0) + 1
        for model, n in sorted(holders.items()):
            per_model.add_metric([model], n)
        yield loaded
        yield held_max
        yield per_model
        passes = CounterMetricFamily("fineserve_forward_passes", "Batched forward passes on the serving replicas",
                                     labels=["method"])
        sizes = HistogramMetricFamily("fineserve_batch_images", "Images per forward pass (callers merged)",
                                      labels=["method"])
        for method, h in snap["passes"].items():
            passes.add_metric([method], h["count"])
            sizes.add_metric([method], [(_le(le), n) for le, n in h["buckets"]], h["sum"])
        yield passes
        yield sizes


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(bound)


def start_metrics(port: int, host: str, collector: ServingCollector) -> int:
    """Serve /metrics on port (0 = a free one); returns the port."""
    REGISTRY.register(collector)
    server, _ = start_http_server(port, addr=host)
    return int(server.server_port)
