"""Job lifecycle: submit to Ray, persist every event, relay events to watchers, cancel, re-queue, resume.

States move QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED. Every change is an event in the store
first, so WatchJob from any sequence number, and a server restart, see the same history. Fine-tune jobs
checkpoint after every epoch into their staging directory; a lost worker or a service restart runs the job
again and the engine resumes from that checkpoint.

A queued job waits in the JobQueue (running caps) and then in Ray (resources). A running job holds a lease
that every worker event renews (workers send heartbeats when they have nothing else to say); a job whose
lease runs out (a hung or stopped worker, a partitioned node) is treated like one whose worker died.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from control.inputs import missing_input
from control.job_events import job_progress, progress_fields, result_proto
from control.job_queue import JobQueue
from control.ray_jobs import RayJobs
from control.registry import Registry
from control.store import Store, now_ts
from fineserve.v1 import training_pb2
from fineserve_common.errors import FailedPrecondition, NotFound
from fineserve_common.events import Batch, Checkpoint, Epoch, Event, Failed, JobResult, Log, Started, Succeeded
from fineserve_common.spec import FINE_TUNE, JobSpec
from worker.jobs import Message, PlacementGroupHeld

log = logging.getLogger(__name__)

TERMINAL = {training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED}
OLDER_VERSION = "created by an older version of fineserve, which did not store its spec; submit it again"
# Attempts per job before a lost worker fails it (each resumes from the last checkpoint).
MAX_ATTEMPTS = 3
# Heartbeats per lease: a worker sends one when it has sent nothing else for lease / HEARTBEATS_PER_LEASE.
HEARTBEATS_PER_LEASE = 4


UNREADABLE_SPEC = "its stored spec cannot be run by this version of fineserve ({}); submit it again"


class LeaseExpired(Exception):
    """A running job's worker sent nothing (not even a heartbeat) for a whole lease."""


class JobManager:
    def __init__(self, store: Store, backend: RayJobs, registry: Registry, queue: JobQueue | None = None,
                 lease_s: float = 120.0, max_image_pixels: int | None = None,
                 allowed_roots: tuple[Path, ...] | None = None) -> None:
        self._store = store
        self._roots = allowed_roots
        self._max_image_pixels = max_image_pixels
        self._backend = backend
        self._registry = registry
        self._queue = queue or JobQueue()
        self._lease_s = lease_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._gens: dict[str, Any] = {}
        # What the manager decided for a job while its worker still runs (an accepted cancel; an input gone, with
        # the reason): the job's end honours it whatever the worker then reports (see _decided).
        self._cancel_requested: set[str] = set()
        self._input_gone: dict[str, str] = {}
        self._changed: dict[str, asyncio.Condition] = {}
        self._stopping = False

    # public API
    def create(self, job: training_pb2.Job, spec: JobSpec, request_id: str) -> training_pb2.Job:
        """Store the job with its spec (the one a re-queue runs again) and queue it."""
        cpus, gpus, workers = self._ask(job)
        if why := self._backend.unschedulable(cpus * workers, gpus * workers):
            raise FailedPrecondition(why)
        stored = self._store.put_job(job, request_id, spec)
        if stored.id != job.id:
            return stored  # idempotent repeat
        self._emit(job.id, state=training_pb2.StateChange(state=training_pb2.QUEUED, reason="accepted"))
        self._enqueue(job, spec)
        return self.get(job.id)

    def resume_unfinished(self) -> int:
        """Re-queue what a previous run left QUEUED/RUNNING, each with its stored spec. Returns how many were
        re-queued. A job that cannot run (no stored spec: its request is checked only when it is created; a spec
        this version refuses; an input gone) fails with the reason, and only that job: the control plane starts
        whatever one job's data holds."""
        resumed = 0
        for job in self._store.unfinished_jobs():
            try:
                resumed += self._resume(job)
            except Exception as e:
                log.exception("job %s could not be re-queued", job.id)
                self._fail_unrun(job.id, f"could not be re-queued after a service restart ({type(e).__name__}: "
                                         f"{e}); submit it again")
        return resumed

    def _resume(self, job: training_pb2.Job) -> bool:
        """Re-queue one job; False when it failed instead."""
        try:
            spec = self._store.job_spec(job.id)
        except Exception as e:  # a bound this version added, a field it dropped: the spec is refused, not run
            self._fail_unrun(job.id, UNREADABLE_SPEC.format(e))
            return False
        if spec is None:
            self._fail_unrun(job.id, OLDER_VERSION)
            return False
        if why := missing_input(self._store, job, spec, self._roots):
            self._fail_unrun(job.id, why)
            return False
        if job.state == training_pb2.RUNNING:
            job.state = training_pb2.QUEUED
            self._store.update_job(job)
        self._emit(job.id, state=training_pb2.StateChange(
            state=training_pb2.QUEUED,
            reason="re-queued after a service restart; resumes from its last checkpoint"))
        self._enqueue(job, spec)
        return True

    def _fail_unrun(self, job_id: str, reason: str) -> None:
        """Fail a job that never reached a worker in this run; a store that cannot even record it is logged."""
        try:
            self._set_state(job_id, training_pb2.FAILED, reason)
            self._registry.discard_staging(job_id)
        except Exception:
            log.exception("job %s: could not record its failure (%s)", job_id, reason)

    def get(self, job_id: str) -> training_pb2.Job:
        job = self._store.get_job(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job

    async def cancel(self, job_id: str) -> training_pb2.Job:
        job = self.get(job_id)
        if job.state in TERMINAL:
            return job
        if self._queue.remove(job_id):  # never handed to Ray
            self._set_state(job_id, training_pb2.CANCELLED, "cancelled by request while queued")
            self._registry.discard_staging(job_id)
            return self.get(job_id)
        self._cancel_requested.add(job_id)  # accepted: however the worker ends, the job ends CANCELLED
        gen = self._gens.get(job_id)
        if gen is not None:  # else _run has yet to submit it, and will not
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
        """Stop running jobs and leave them QUEUED so the next start resumes them."""
        self._stopping = True
        for gen in list(self._gens.values()):
            self._backend.cancel(gen)
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()), timeout=grace)

    # internals
    def _enqueue(self, job: training_pb2.Job, spec: JobSpec) -> None:
        # This control plane's lease and image limit travel with the job: its workers decode the data set's
        # images under the limit, and send heartbeats often enough to keep the lease.
        self._queue.push(job.id, job.tenant, spec.with_runtime(self._lease_s / HEARTBEATS_PER_LEASE,
                                                               self._max_image_pixels))
        self._dispatch()
        if reason := self._queue.held_back(job.id):
            self._emit(job.id, state=training_pb2.StateChange(state=training_pb2.QUEUED, reason=reason))

    def _dispatch(self) -> None:
        """Hand to Ray every queued job the running caps now allow."""
        if self._stopping:
            return
        for waiting in self._queue.admit():
            self._tasks[waiting.job_id] = asyncio.get_running_loop().create_task(
                self._run(waiting.job_id, waiting.spec))

    def _emit(self, job_id: str, **event: Any) -> None:
        self._store.append_event(training_pb2.JobEvent(job_id=job_id, time=now_ts(), **event))
        cond = self._changed.get(job_id)
        if cond is not None:
            asyncio.get_running_loop().create_task(self._notify(cond))

    @staticmethod
    async def _notify(cond: asyncio.Condition) -> None:
        async with cond:
            cond.notify_all()

    def _set_state(self, job_id: str, state: int, reason: str = "") -> None:
        job = self.get(job_id)
        job.state = state
        if state in TERMINAL:
            job.error = reason if state != training_pb2.SUCCEEDED else ""
            job.finished_at.CopyFrom(now_ts())
        self._store.update_job(job)
        self._emit(job_id, state=training_pb2.StateChange(state=state, reason=reason))

    def _ask(self, job: training_pb2.Job) -> tuple[float, float, int]:
        """(CPUs, GPUs) per worker and the number of workers: the request's, else the server's defaults (a GPU
        per worker when the cluster has any)."""
        resources = job.request.resources if job.kind == FINE_TUNE else job.lr_request.resources
        workers = max(resources.workers, 1)
        gpus = resources.gpus_per_worker
        if gpus == 0 and not resources.cpu_only and self._backend.cluster_gpus() > 0:
            gpus = 1.0
        return self._backend.job_cpus(resources.cpus_per_worker, workers), gpus, workers

    async def _run(self, job_id: str, spec: JobSpec) -> None:
        job = self.get(job_id)
        cpus, gpus, _ = self._ask(job)
        try:
            while True:
                # Checked before every attempt: a cancel accepted before the worker exists, an input gone while
                # the job waited (or between attempts).
                if job_id in self._cancel_requested:
                    self._set_state(job_id, training_pb2.CANCELLED, "cancelled by request before its worker started")
                    return
                if why := missing_input(self._store, job, spec, self._roots):
                    self._set_state(job_id, training_pb2.FAILED, why)
                    return
                if self._stopping:  # it stays QUEUED, for the next start
                    return
                held = None  # a data-parallel run's placement group (its workers' CPUs and GPUs)
                try:
                    gen = self._backend.submit(spec, cpus, gpus)
                    self._gens[job_id] = gen
                    running = False
                    # No lease while Ray is still waiting for resources: a queued job may wait indefinitely.
                    while (ev := await self._next_event(gen, self._lease_s if running else None)) is not None:
                        running = running or isinstance(ev, Started)
                        if isinstance(ev, PlacementGroupHeld):
                            held = ev.group
                        elif await self._handle(job, spec, ev):
                            return
                    self._end(job, spec, training_pb2.FAILED, "the worker ended without a result")
                    return
                except Exception as e:
                    if isinstance(e, LeaseExpired):
                        self._backend.cancel(gen, force=True)
                    if held is not None:  # a killed or lost generator cannot free it: a resumed run needs it
                        self._backend.release(held)
                    decided = self._decided(job_id)
                    if (decided is None and not self._stopping and self._is_lost(e)
                            and self.get(job_id).attempts < MAX_ATTEMPTS):
                        log.warning("job %s lost its worker: %s; resuming", job_id, e)
                        self._set_state(job_id, training_pb2.QUEUED, (
                            f"worker lost ({e if isinstance(e, LeaseExpired) else type(e).__name__}); resuming "
                            f"from the last checkpoint (attempt {self.get(job_id).attempts + 1} of {MAX_ATTEMPTS})"))
                        continue
                    elif isinstance(e, LeaseExpired):
                        self._end(job, spec, training_pb2.FAILED, f"worker lost ({e}) on the last attempt")
                    else:
                        if decided is None and not self._stopping:
                            log.warning("job %s failed in Ray: %s", job_id, e)
                        self._end(job, spec, training_pb2.FAILED, f"the job's Ray worker failed: {e}")
                    return
        except Exception as e:  # a fault of the manager's own: it fails this job, never the queue or other jobs
            log.exception("job %s: the job manager failed", job_id)
            if self.get(job_id).state not in TERMINAL:
                self._set_state(job_id, training_pb2.FAILED,
                                f"internal error in the job manager ({type(e).__name__}: {e}); see the server log")
        finally:
            self._gens.pop(job_id, None)
            self._tasks.pop(job_id, None)
            self._cancel_requested.discard(job_id)
            self._input_gone.pop(job_id, None)
            self._queue.finished(job_id)
            if self.get(job_id).state in (training_pb2.FAILED, training_pb2.CANCELLED):
                self._registry.discard_staging(job_id)
            self._dispatch()

    def _decided(self, job_id: str) -> tuple[int, str] | None:
        """The end the manager chose for a job while its worker ran: an accepted cancel, or an input gone."""
        if job_id in self._cancel_requested:
            return training_pb2.CANCELLED, "cancelled by request"
        if why := self._input_gone.get(job_id):
            return training_pb2.FAILED, why
        return None

    def _end(self, job: training_pb2.Job, spec: JobSpec, state: int, reason: str) -> None:
        """Record the job's end as its worker reported it, unless the manager decided otherwise first (a cancel
        accepted while the worker was starting, running or finishing ends CANCELLED, even if the worker then
        failed or vanished) or is stopping (the stop interrupted the worker: however it then ended, raised, ended
        its stream or reported a failure, the job waits QUEUED for the next start); a failure is explained by a
        missing input when there is one."""
        if decided := self._decided(job.id):
            state, reason = decided
        elif self._stopping:
            state, reason = training_pb2.QUEUED, "service stopping: job re-queued for the next start"
        elif state == training_pb2.FAILED and (why := missing_input(self._store, job, spec, self._roots)):
            reason = f"{why} (the worker said: {reason})"
        self._set_state(job.id, state, reason)

    def _is_lost(self, error: Exception) -> bool:
        return isinstance(error, LeaseExpired) or self._backend.is_worker_lost(error)

    async def _next_event(self, gen: Any, lease_s: float | None) -> Message | None:
        """The worker's next event (None at its end); LeaseExpired when none comes within lease_s."""

        async def next_event() -> Message | None:
            try:
                ref = await gen.__anext__()
            except StopAsyncIteration:
                return None
            return await ref

        try:
            return await asyncio.wait_for(next_event(), lease_s)
        except TimeoutError:
            raise LeaseExpired(f"no heartbeat for {lease_s:g} s") from None

    async def _handle(self, job: training_pb2.Job, spec: JobSpec, ev: Event) -> bool:
        """Store one worker event as the job's proto event; True once the job has reached a terminal state."""
        job_id = job.id
        match ev:
            case Started(pid=pid, host=host):
                job = self.get(job_id)
                job.attempts += 1
                job.started_at.CopyFrom(now_ts())
                self._store.update_job(job)
                self._set_state(job_id, training_pb2.RUNNING)
                self._emit(job_id, log=training_pb2.LogMessage(
                    message=f"attempt {job.attempts}: worker pid {pid} on {host}"))
            case Log() | Checkpoint():
                self._emit(job_id, **progress_fields(ev))
            case Batch():
                job = self.get(job_id)
                job.progress.CopyFrom(job_progress(ev))
                self._store.update_job(job)
                self._emit(job_id, **progress_fields(ev))
            case Epoch():
                self._emit(job_id, **progress_fields(ev))
                self._check_inputs(job, spec)
            case Succeeded(result=result):
                if decided := self._decided(job_id):  # the worker finished before the cancel reached it
                    self._set_state(job_id, *decided)
                else:
                    await self._succeed(job_id, result)
                return True
            case Failed(reason=reason, cancelled=cancelled):
                if cancelled:
                    self._end(job, spec, training_pb2.CANCELLED, "cancelled by request")
                else:
                    self._end(job, spec, training_pb2.FAILED, reason)
                return True
        return False  # a heartbeat: receiving it renewed the lease

    def _check_inputs(self, job: training_pb2.Job, spec: JobSpec) -> None:
        """At each epoch: a job whose input went away is stopped (it fails with the reason once its worker ends),
        rather than trained on to an end its owner no longer wants, or to a bare file error later."""
        if self._decided(job.id) is not None:
            return
        if why := missing_input(self._store, job, spec, self._roots):
            self._input_gone[job.id] = why
            self._emit(job.id, log=training_pb2.LogMessage(message=f"stopping: {why}"))
            if (gen := self._gens.get(job.id)) is not None:
                self._backend.cancel(gen)

    async def _succeed(self, job_id: str, outcome: JobResult) -> None:
        """Record the result and publish the model: the commit point (_handle checked for a cancel just before);
        a cancel arriving from here on is too late, and CancelJob answers the finished job."""
        job = self.get(job_id)
        result = job.result
        result.MergeFrom(result_proto(outcome))
        if job.kind == FINE_TUNE:
            if outcome.card is None:
                self._set_state(job_id, training_pb2.FAILED, "the fine-tune ended without a model card")
                return
            model = await self._registry.publish(job, outcome.card)
            result.model.CopyFrom(model.ref)
            result.metrics.update(model.metrics)
        self._store.update_job(job)
        self._set_state(job_id, training_pb2.SUCCEEDED)
