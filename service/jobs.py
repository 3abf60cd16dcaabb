"""Job lifecycle: submit to Ray, persist every event, relay events to watchers, cancel, re-queue.

States move QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED. Every change is an event in the store
first, so WatchJob from any sequence number, and a server restart, see the same history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from fineserve.v1 import training_pb2
from service.errors import not_found
from service.ray_backend import RayBackend
from service.registry import Registry
from service.store import Store, now_ts

log = logging.getLogger(__name__)

TERMINAL = {training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED}


class JobManager:
    def __init__(self, store: Store, backend: RayBackend, registry: Registry) -> None:
        self._store = store
        self._backend = backend
        self._registry = registry
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._gens: dict[str, Any] = {}
        self._cancel_requested: set[str] = set()
        self._changed: dict[str, asyncio.Condition] = {}
        self._stopping = False

    # public API
    def create(self, job: training_pb2.Job, spec: dict[str, Any]) -> training_pb2.Job:
        stored = self._store.put_job(job, job.request.request_id)
        if stored.id != job.id:
            return stored  # idempotent repeat
        self._emit(job.id, state=training_pb2.StateChange(state=training_pb2.QUEUED, reason="accepted"))
        self._start(job.id, spec)
        return job

    def resume_unfinished(self, spec_for: Any) -> int:
        """Re-queue what a previous run left QUEUED/RUNNING; spec_for(job) rebuilds its spec."""
        jobs = self._store.unfinished_jobs()
        for job in jobs:
            if job.state == training_pb2.RUNNING:
                job.state = training_pb2.QUEUED
                self._store.update_job(job)
            self._emit(job.id, state=training_pb2.StateChange(
                state=training_pb2.QUEUED, reason="re-queued after a service restart; the job starts over"))
            self._start(job.id, spec_for(job))
        return len(jobs)

    def get(self, job_id: str) -> training_pb2.Job:
        job = self._store.get_job(job_id)
        if job is None:
            raise not_found(f"job {job_id!r} not found")
        return job

    async def cancel(self, job_id: str) -> training_pb2.Job:
        job = self.get(job_id)
        if job.state in TERMINAL:
            return job
        self._cancel_requested.add(job_id)
        gen = self._gens.get(job_id)
        if gen is not None:
            self._backend.cancel(gen)
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=30)
        return self.get(job_id)

    async def watch(self, job_id: str, from_seq: int) -> AsyncIterator[training_pb2.JobEvent]:
        self.get(job_id)
        cond = self._changed.setdefault(job_id, asyncio.Condition())
        next_seq = max(from_seq, 1)
        while True:
            events = self._store.events(job_id, next_seq)
            for ev in events:
                yield ev
                next_seq = ev.sequence + 1
                if ev.WhichOneof("event") == "state" and ev.state.state in TERMINAL:
                    return
            if not events and self.get(job_id).state in TERMINAL:
                return
            if self._stopping:
                return
            async with cond:
                if not self._store.events(job_id, next_seq):
                    await cond.wait()

    def close_watchers(self) -> None:
        """End every WatchJob stream (clients resume from their last sequence after a restart)."""
        self._stopping = True
        for cond in self._changed.values():
            asyncio.get_running_loop().create_task(self._notify(cond))

    async def shutdown(self, grace: float) -> None:
        """Stop running jobs and leave them QUEUED so the next start runs them again."""
        self._stopping = True
        for gen in list(self._gens.values()):
            self._backend.cancel(gen)
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()), timeout=grace)

    # internals
    def _start(self, job_id: str, spec: dict[str, Any]) -> None:
        self._tasks[job_id] = asyncio.get_running_loop().create_task(self._run(job_id, spec))

    def _emit(self, job_id: str, **event: Any) -> None:
        self._store.append_event(training_pb2.JobEvent(job_id=job_id, time=now_ts(), **event))
        cond = self._changed.get(job_id)
        if cond is not None:
            asyncio.get_running_loop().create_task(self._notify(cond))

    @staticmethod
    async def _notify(cond: asyncio.Condition) -> None:
        async with cond:
            cond.notify_all()

    def _finish(self, job_id: str, state: int, reason: str = "") -> None:
        job = self.get(job_id)
        job.state = state
        job.error = reason if state != training_pb2.SUCCEEDED else ""
        job.finished_at.CopyFrom(now_ts())
        self._store.update_job(job)
        self._emit(job_id, state=training_pb2.StateChange(state=state, reason=reason))

    async def _run(self, job_id: str, spec: dict[str, Any]) -> None:
        job = self.get(job_id)
        resources = job.request.resources
        gpus = resources.gpus_per_worker
        if gpus == 0 and not resources.cpu_only and self._backend.cluster_gpus() > 0:
            gpus = 1.0
        try:
            gen = self._backend.submit_fine_tune(spec, self._backend.job_cpus(resources.cpus_per_worker), gpus)
            self._gens[job_id] = gen
            async for ref in gen:
                if await self._handle(job_id, await ref):
                    return
            self._finish(job_id, training_pb2.FAILED, "the worker ended without a result")
        except Exception as e:
            if self._stopping:
                self._requeue(job_id)
            elif job_id in self._cancel_requested:
                self._finish(job_id, training_pb2.CANCELLED, "cancelled by request")
            else:
                log.warning("job %s failed in Ray: %s", job_id, e)
                self._finish(job_id, training_pb2.FAILED, f"the job's Ray worker failed: {e}")
        finally:
            self._gens.pop(job_id, None)
            self._tasks.pop(job_id, None)
            self._cancel_requested.discard(job_id)
            if self.get(job_id).state != training_pb2.SUCCEEDED:
                self._registry.discard_staging(job_id)

    def _requeue(self, job_id: str) -> None:
        job = self.get(job_id)
        job.state = training_pb2.QUEUED
        self._store.update_job(job)
        self._emit(job_id, state=training_pb2.StateChange(
            state=training_pb2.QUEUED, reason="service stopping: job re-queued for the next start"))

    async def _handle(self, job_id: str, ev: dict[str, Any]) -> bool:
        """Apply one worker event; True once the job has reached a terminal state."""
        kind = ev["type"]
        if kind == "started":
            job = self.get(job_id)
            job.state = training_pb2.RUNNING
            job.attempts += 1
            job.started_at.CopyFrom(now_ts())
            self._store.update_job(job)
            self._emit(job_id, state=training_pb2.StateChange(state=training_pb2.RUNNING))
        elif kind == "log":
            self._emit(job_id, log=training_pb2.LogMessage(message=ev["message"]))
        elif kind == "batch":
            self._progress(job_id, ev)
            self._emit(job_id, batch=training_pb2.BatchProgress(
                phase=ev["phase"], epoch=ev["epoch"], epochs=ev["epochs"], batch=ev["batch"],
                batches=ev["batches"], loss=ev["loss"], lr=ev.get("lr", 0.0)))
        elif kind == "epoch":
            metrics = {k: float(ev[k]) for k in ("train_loss", "valid_loss", "accuracy") if k in ev}
            self._emit(job_id, epoch=training_pb2.EpochMetrics(
                phase=ev["phase"], epoch=ev["epoch"], epochs=ev["epochs"], metrics=metrics,
                seconds=ev.get("seconds", 0.0)))
        elif kind == "succeeded":
            model = await self._registry.publish(self.get(job_id), ev["card"])
            job = self.get(job_id)
            job.result.model.CopyFrom(model.ref)
            job.result.metrics.update(model.metrics)
            self._store.update_job(job)
            self._finish(job_id, training_pb2.SUCCEEDED)
            return True
        elif kind == "failed":
            if ev.get("cancelled") or job_id in self._cancel_requested:
                self._finish(job_id, training_pb2.CANCELLED, "cancelled by request")
            else:
                self._finish(job_id, training_pb2.FAILED, ev["reason"])
            return True
        return False

    def _progress(self, job_id: str, ev: dict[str, Any]) -> None:
        job = self.get(job_id)
        job.progress.CopyFrom(training_pb2.JobProgress(epoch=ev["epoch"], epochs=ev["epochs"], batch=ev["batch"],
                                                       batches=ev["batches"], phase=ev["phase"]))
        self._store.update_job(job)
