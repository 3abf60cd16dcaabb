"""The front door's door to Ray: connecting (local or cluster) and the serving app. Jobs go through the
coordinator (control/ray_jobs.py).

Worker code is referenced by import so that this process never loads torch: the serving deployment imports the
engine only inside Ray workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any

import psutil
import ray
from ray import serve

from service.config import Settings

log = logging.getLogger(__name__)

SERVE_APP = "fineserve"
# Ray Serve's latency flag for the replicas: requests run on the replica's own event loop, not a second one.
# ModelServer keeps blocking work off that loop (asyncio.to_thread), which the flag asks for.
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
# Room in a replica's gRPC message for the request's framing around its images.
MESSAGE_SLACK = 1 << 20
# Ray Serve's receive limit of its gRPC transport, on both ends: the replicas' server (requests) and the
# handle's channels to them (answers).
GRPC_LIMIT_ENV = "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"


def receive_answers_up_to(size: int) -> None:
    """Let this process's serving handle receive answers of up to size bytes (gRPC's default is 4 MiB, and
    an Explain overlay of a 5-megapixel photo is more). Ray Serve reads GRPC_LIMIT_ENV once, when ray.serve is
    imported (by this module, so before the settings are known), into the module that opens the handle's
    channels; they open at the first call to each replica, after this."""
    from ray.serve._private.request_router import replica_wrapper

    if not hasattr(replica_wrapper, GRPC_LIMIT_ENV):
        raise RuntimeError(f"this Ray Serve has no {GRPC_LIMIT_ENV}: answers over 4 MiB would fail; see "
                           "service/ray_serving.py")
    setattr(replica_wrapper, GRPC_LIMIT_ENV, size)


def serving_version(*config: Any) -> str:
    """The serving app's version: its settings and the replicas' code. Ray Serve gives an app deployed without
    one a random version, so each front door joining a cluster replaced every replica (on a GPU each one's
    warm-up again, the doors' starts waiting on each other's); with this, a door deploying what already runs
    changes nothing, and another setting or release still rolls the replicas."""
    from fineserve_common import errors
    from worker import serving

    digest = hashlib.sha256(repr(config).encode())
    for module in (serving, errors):  # by a module of each package (a test run may see a namespace package)
        for path in sorted(Path(module.__file__ or "").parent.rglob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


LOCAL_RAY_STARTS = 3
"""Tries at starting the embedded Ray: on a busy small machine its head sometimes misses its own start-up deadline
("The current node timed out during startup"), and a second try then succeeds."""


def start_local_ray(options: dict[str, Any]) -> None:
    """A new local Ray instance (address="local": never a `ray start` cluster this machine happens to run)."""
    for attempt in range(1, LOCAL_RAY_STARTS + 1):
        before = {c.pid for c in psutil.Process().children(recursive=True)}
        try:
            ray.init(address="local", namespace="fineserve", **options)
            return
        except Exception as e:  # Ray raises a bare Exception for a head that missed its start-up deadline
            if attempt == LOCAL_RAY_STARTS or "timed out during startup" not in str(e):
                raise
            # Named in the log: the cause is not known yet, and which of the failed head's processes ran, and in
            # what state, is the clue (a raylet that never exec'd shows as a copy of this process).
            failed = ", ".join(describe(c) for c in psutil.Process().children(recursive=True) if c.pid not in before)
            log.warning("local Ray did not start (%s); its processes: %s; trying again (%d of %d)", e,
                        failed or "none", attempt + 1, LOCAL_RAY_STARTS)
            ray.shutdown()
            # the failed head's processes (its GCS, raylet, ...) are not the shutdown's to stop: it never had a node
            for child in psutil.Process().children(recursive=True):
                if child.pid not in before:
                    with contextlib.suppress(psutil.Error):
                        child.kill()


def describe(process: psutil.Process) -> str:
    """name (pid, state, where it waits in the kernel): for the log."""
    try:
        with process.oneshot():
            name, status = process.name(), process.status()
        wchan = Path(f"/proc/{process.pid}/wchan").read_text() if Path("/proc").is_dir() else ""
    except (psutil.Error, OSError):
        return f"pid {process.pid} (gone)"
    return f"{name} (pid {process.pid}, {status}{', waiting in ' + wchan if wchan and wchan != '0' else ''})"


class RayBackend:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local = not settings.ray_address
        self.handle: Any = None
        self.stats: Any = None

    def start(self) -> None:
        """Blocking: connect to (or start) Ray and deploy the serving app."""
        from worker.serving_stats import STATS_ACTOR, STATS_NAMESPACE, ServingStats

        if self._local:
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self._settings.local_ray_cpus:
                kw["num_cpus"] = self._settings.local_ray_cpus
            start_local_ray(kw)
            log.info("started a local Ray instance (embedded mode)")
        else:
            ray.init(address=self._settings.ray_address, namespace="fineserve", log_to_driver=False)
            log.info("connected to the Ray cluster at %s", self._settings.ray_address)
        # Detached: on a cluster the replicas keep reporting across front-door restarts.
        self.stats = ray.remote(ServingStats).options(name=STATS_ACTOR, namespace=STATS_NAMESPACE, num_cpus=0,
                                                      lifetime="detached", get_if_exists=True).remote()
        receive_answers_up_to(self.message_limit())
        serve.start(http_options={"location": "NoServer"})
        try:  # what already runs (another door deployed it) is left running
            self.handle = serve.run(self.serving_app(), name=SERVE_APP, route_prefix=None, blocking=False)
        except RuntimeError as e:  # an app that failed before this door came: its replicas start afresh
            log.warning("the serving app is failing (%s); deploying it afresh", e)
            self.handle = serve.run(self.serving_app(keep_version=False), name=SERVE_APP, route_prefix=None,
                                    blocking=False)

    def serving_app(self, keep_version: bool = True) -> Any:
        """The ModelServer deployment shaped by the settings: replica resources, replica count or autoscaling,
        request limits (Ray Serve rejects calls past max_queued_requests at once: BackPressureError), batching. No
        access log line per request on replicas: the front door's metrics count calls, and at a GPU's call rate
        the line costs about 3 % of a replica's CPU, on the thread that admits requests."""
        from worker.serving import ModelServer

        s = self._settings
        c = s.serving
        scaling: dict[str, Any] = (
            {"num_replicas": c.min_replicas} if c.min_replicas == c.max_replicas else
            {"autoscaling_config": {"min_replicas": c.min_replicas, "max_replicas": c.max_replicas,
                                    "target_ongoing_requests": c.target_ongoing_requests}})
        options = dict(
            ray_actor_options={"num_cpus": c.replica_cpus, "num_gpus": c.replica_gpus,
                               "runtime_env": {"env_vars": self.replica_env()}},
            max_ongoing_requests=c.max_ongoing_requests, max_queued_requests=c.max_queued_requests,
            logging_config={"enable_access_log": False}, **scaling)
        args = (str(s.data_dir / "models"), s.models_per_replica, s.limits.max_image_pixels)
        kwargs = {"max_batch_size": c.max_batch_size, "batch_wait_s": c.batch_wait_s, "precision": c.precision}
        deployment = ModelServer.options(**options)
        if keep_version:  # options() takes no version any more, and Ray Serve gives an app deployed from Python
            # a random one unless the deployment carries its own (serve/_private/client.py reads this attribute)
            deployment._version = serving_version(options, args, kwargs)
        return deployment.bind(*args, **kwargs)

    def message_limit(self) -> int:
        """The largest message between the front door and a replica, either way: the configured
        max_message_bytes, with room for Ray Serve's framing around it."""
        return self._settings.limits.max_message_bytes + MESSAGE_SLACK

    def replica_env(self) -> dict[str, str]:
        """REPLICA_ENV, and a replica gRPC server that takes every request the front door accepts (the
        front door sends requests over Ray Serve's gRPC transport, whose own limit is 4 MiB)."""
        return REPLICA_ENV | {GRPC_LIMIT_ENV: str(self.message_limit())}

    def serving_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The stats actor's snapshot (worker/serving_stats.py); blocking, for the metrics thread."""
        return ray.get(self.stats.snapshot.remote(), timeout=timeout)

    async def loaded_replicas(self, model_id: str) -> int:
        """How many serving replicas hold the model (by serving id) in memory now; 0 when the stats actor does
        not answer within a second (GetModel's other fields matter more than this one)."""
        try:
            snap = await asyncio.wait_for(self.stats.snapshot.remote(), 1.0)
        except (TimeoutError, ray.exceptions.RayError) as e:
            log.warning("serving stats unavailable: %s", e)
            return 0
        return sum(model_id in r["models"] for r in snap["replicas"].values())

    @staticmethod
    def stop() -> None:
        """Disconnect; a local Ray goes down with its replicas, a cluster keeps serving for other front doors."""
        ray.shutdown()
