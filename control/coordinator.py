"""The job coordinator: the one owner of the store and the job manager, as a named Ray actor.

Every front door (one in the embedded default, several behind a Kubernetes Service) talks to the same
coordinator, so datasets, jobs, events and models are shared and each job is driven by exactly one process.
On a cluster the coordinator is detached and restartable: a front door that stops or crashes leaves running
jobs running (they need no re-queue), and a coordinator that Ray restarts re-queues unfinished jobs, which
resume from their checkpoints. On a local Ray it lives and dies with the front door that started Ray.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from control.job_queue import JobQueue
from control.jobs import JobManager
from control.ray_jobs import RayJobs
from control.registry import Registry
from control.store import TenantStore, open_store
from fineserve.v1 import models_pb2, training_pb2
from fineserve_common.errors import FineserveError
from fineserve_common.spec import JobSpec

log = logging.getLogger(__name__)

COORDINATOR = "fineserve-coordinator"
# Concurrent calls the actor serves: every open WatchJob stream and every front door's long poll holds one.
MAX_CALLS = 10_000
# Model lookups a front door keeps (see RemoteStore.get_model), and its pause before polling a lost coordinator.
CACHED_LOOKUPS = 4096
FOLLOW_RETRY_S = 1.0


@dataclass(frozen=True)
class ControlSettings:
    """What the coordinator takes from the server's settings: plain values, so that the control plane never
    imports the front door (the front door builds it from its own Settings)."""

    data_dir: Path
    ray_address: str = ""
    """"" = a local Ray, started by the front door: the coordinator lives and dies with it."""
    job_cpus: float = 0.0
    """CPUs per job worker when a request names none (0: see RayJobs.job_cpus)."""
    max_running_jobs: int = 0
    max_running_jobs_per_tenant: int = 0
    max_active_jobs_per_tenant: int = 0
    """QUEUED + RUNNING jobs a tenant may have (0 = no limit)."""
    job_lease_s: float = 120.0
    max_image_pixels: int | None = None
    allowed_roots: tuple[Path, ...] | None = None
    """The front door's --allowed-root directories: a re-queued job whose registered data set or weights file is
    no longer under one fails (None: not re-checked)."""
    job_store: str = field(default="", repr=False)
    """"" = SQLite in data_dir; a postgresql:// URL (it may hold a password: kept out of repr) = PostgreSQL."""


class ChangeCounter:
    """A count of changes and a wait for it to move past a value seen; bump may be called from any thread."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def bump(self) -> None:
        with self._lock:
            self.value += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))

    async def after(self, seen: int) -> int:
        """The count, as soon as it differs from seen."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.value != seen:
                return self.value
            waiter = (loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter[1]
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise
        return self.value


class Coordinator:
    """Runs inside the actor (an async actor: the job manager's tasks live on its event loop)."""

    def __init__(self, settings: ControlSettings) -> None:
        self._store = open_store(settings.job_store, settings.data_dir, settings.max_active_jobs_per_tenant)
        self._model_changes = ChangeCounter()
        self._store.on_models_changed = self._model_changes.bump
        self._registry = Registry(self._store, settings.data_dir)
        self._jobs = JobManager(self._store, RayJobs(not settings.ray_address, settings.job_cpus), self._registry,
                                JobQueue(settings.max_running_jobs, settings.max_running_jobs_per_tenant),
                                settings.job_lease_s, settings.max_image_pixels, settings.allowed_roots)
        self._resumed = self._jobs.resume_unfinished()

    def resumed(self) -> int:
        """Jobs this coordinator re-queued when it started."""
        return self._resumed

    def store(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._store, method)(*args, **kwargs)

    def schema_version(self) -> int:
        return self._store.schema_version

    async def models_changed(self, seen: int) -> int:
        """The count of changes to the models table, once it differs from seen: a front door's long poll."""
        return await self._model_changes.after(seen)

    async def create(self, job: training_pb2.Job, spec: JobSpec, request_id: str) -> training_pb2.Job:
        return self._jobs.create(job, spec, request_id)

    def get(self, job_id: str) -> training_pb2.Job:
        return self._jobs.get(job_id)

    async def cancel(self, job_id: str) -> training_pb2.Job:
        return await self._jobs.cancel(job_id)

    async def watch(self, job_id: str, from_seq: int) -> AsyncIterator[training_pb2.JobEvent]:
        async for ev in self._jobs.watch(job_id, from_seq):
            yield ev

    async def shutdown(self, grace: float) -> None:
        """Stop running jobs, leaving them QUEUED for the next start (a local Ray is about to go down)."""
        self._jobs.close_watchers()
        await self._jobs.shutdown(grace)
        self._store.close()


def connect(settings: ControlSettings) -> tuple[Any, int]:
    """(the coordinator actor, jobs it re-queued when it started): the running one, or a new one (blocking;
    Ray must be initialised). Asking for the count also surfaces a failed start here, with its cause."""
    local = not settings.ray_address
    options: dict[str, Any] = {"name": COORDINATOR, "get_if_exists": True, "num_cpus": 0,
                               "max_concurrency": MAX_CALLS}
    if not local:
        # Outlives front doors; restarted by Ray (it re-queues unfinished jobs); next to the head's storage.
        options.update(lifetime="detached", max_restarts=-1, resources={"node:__internal_head__": 0.001})
    actor = ray.remote(Coordinator).options(**options).remote(settings)
    return actor, ray.get(actor.resumed.remote())


def _cause(e: ray.exceptions.RayTaskError) -> Exception:
    """A FineserveError raised in the coordinator, as itself (its status intact); anything else as Ray's error."""
    return e.cause if isinstance(e.cause, FineserveError) else e


def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return ray.get(method.remote(*args, **kwargs))
    except ray.exceptions.RayTaskError as e:
        raise _cause(e) from None


async def _result(ref: Any) -> Any:
    try:
        return await ref
    except ray.exceptions.RayTaskError as e:
        raise _cause(e) from None


def _copy(model: models_pb2.Model) -> models_pb2.Model:
    out = models_pb2.Model()
    out.CopyFrom(model)
    return out


class RemoteStore:
    """Store's interface, each call answered by the coordinator's Store (one short actor call).

    Model lookups, on every inference call's path, are answered from a cache instead while
    follow_model_changes runs: the coordinator answers its long poll whenever the models table changes, and
    the cache is dropped then; without an answering coordinator nothing is cached. A model another front
    door deletes or publishes reaches this one's lookups within that reply's trip.
    """

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._models: OrderedDict[tuple[str, str, int], tuple[models_pb2.Model, str]] = OrderedDict()
        self._following = False
        self._generation = 0  # changes this front door has seen: a lookup started before one is not cached
        # The servicers call from the event loop (inference) and from threads (everything else).
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, str, int]) -> tuple[tuple[models_pb2.Model, str] | None, int]:
        """(the cached lookup or None, the generation it was read at)."""
        with self._lock:
            hit = self._models.get(key) if self._following else None
            if hit is not None:
                self._models.move_to_end(key)
            generation = self._generation
        # a copy: callers fill in fields of their answer (loaded_replicas)
        return (None if hit is None else (_copy(hit[0]), hit[1])), generation

    def cached_model(self, name: str, version: int, *, tenant: str) -> tuple[models_pb2.Model, str] | None:
        """get_model's answer when the cache holds it (no actor call); None when only get_model can tell."""
        return self._cached((tenant, name, version))[0]

    def get_model(self, name: str, version: int, *, tenant: str) -> tuple[models_pb2.Model, str] | None:
        key = (tenant, name, version)
        hit, generation = self._cached(key)
        if hit is not None:
            return hit
        found = _call(self._actor.store, "get_model", name, version, tenant=tenant)
        if found is not None:
            with self._lock:
                if self._following and generation == self._generation:
                    self._models[key] = (_copy(found[0]), found[1])
                    if len(self._models) > CACHED_LOOKUPS:
                        self._models.popitem(last=False)
        return found

    def delete_models(self, name: str, version: int, *, tenant: str) -> list[tuple[int, str]]:
        try:
            return _call(self._actor.store, "delete_models", name, version, tenant=tenant)
        finally:  # this front door's next lookup must not see what it deleted, whenever the poll's reply comes
            self._forget_models()

    def _forget_models(self) -> None:
        with self._lock:
            self._models.clear()
            self._generation += 1

    async def follow_model_changes(self) -> None:
        """For the front door's life: drop cached lookups at each change the coordinator reports."""
        seen = -1
        while True:
            try:
                seen = await _result(self._actor.models_changed.remote(seen))
            except Exception as e:  # the coordinator is restarting or gone: cache nothing until it answers
                if self._following:
                    log.warning("model changes not followed (%s); looking models up on every call", e)
                self._following, seen = False, -1
                self._forget_models()
                await asyncio.sleep(FOLLOW_RETRY_S)
                continue
            self._forget_models()
            self._following = True

    @property
    def schema_version(self) -> int:
        return int(_call(self._actor.schema_version))

    def for_tenant(self, tenant: str) -> TenantStore:
        return TenantStore(self, tenant)  # type: ignore[arg-type]

    def close(self) -> None:
        """The coordinator owns the file; a front door has nothing to close."""

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: _call(self._actor.store, method, *args, **kwargs)


class RemoteJobs:
    """JobManager's interface for the servicers, answered by the coordinator's job manager."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._streams: set[Any] = set()
        self._closing = False

    def create(self, job: training_pb2.Job, spec: JobSpec, request_id: str) -> training_pb2.Job:
        return _call(self._actor.create, job, spec, request_id)

    def get(self, job_id: str) -> training_pb2.Job:
        return _call(self._actor.get, job_id)

    async def cancel(self, job_id: str) -> training_pb2.Job:
        return await _result(self._actor.cancel.remote(job_id))

    async def watch(self, job_id: str, from_seq: int) -> AsyncIterator[training_pb2.JobEvent]:
        stream = self._actor.watch.options(num_returns="streaming").remote(job_id, from_seq)
        self._streams.add(stream)
        try:
            async for ref in stream:
                yield await _result(ref)
        except Exception:
            if not self._closing:
                raise
        finally:
            self._streams.discard(stream)
            ray.cancel(stream)  # the caller went away: end the coordinator's side of the stream too

    def close_watchers(self) -> None:
        """End this front door's WatchJob streams (clients resume from their last sequence elsewhere)."""
        self._closing = True
        for stream in list(self._streams):
            ray.cancel(stream)

    async def shutdown(self, grace: float) -> None:
        await _result(self._actor.shutdown.remote(grace))
