"""Training servicer: fine-tune jobs on Ray, their events, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from control.coordinator import RemoteJobs
from control.registry import Registry
from control.store import Store, now_ts
from fineserve.v1 import training_pb2, training_pb2_grpc
from service.errors import ApiError, not_found, rpc, rpc_stream
from service.ids import new_id, next_token, page_bounds
from service.job_spec import FIND_LR, FINE_TUNE, job_spec
from service.tenancy import current_tenant


class TrainingServicer(training_pb2_grpc.TrainingServicer):
    def __init__(self, store: Store, jobs: RemoteJobs, registry: Registry, allowed_roots: tuple[Path, ...]) -> None:
        self._store = store
        self._jobs = jobs
        self._registry = registry
        self._roots = allowed_roots

    def _spec(self, job: training_pb2.Job) -> dict[str, Any]:
        return job_spec(job, self._store, self._roots, self._registry.staging_dir(job.id))

    def _own_job(self, job_id: str) -> training_pb2.Job:
        """The caller's job; another tenant's id is reported exactly like an unknown one."""
        job = self._store.for_tenant(current_tenant()).get_job(job_id)
        if job is None:
            raise not_found(f"job {job_id!r} not found")
        return job

    @rpc
    async def CreateFineTuneJob(self, request: training_pb2.CreateFineTuneJobRequest,
                                context: grpc.aio.ServicerContext) -> training_pb2.Job:
        job = training_pb2.Job(id=new_id("job"), state=training_pb2.QUEUED, task=request.task, kind=FINE_TUNE,
                               request=request, created_at=now_ts(), tenant=current_tenant())
        return await asyncio.to_thread(self._create, job, request.request_id)

    @rpc
    async def FindLearningRate(self, request: training_pb2.FindLearningRateRequest,
                               context: grpc.aio.ServicerContext) -> training_pb2.Job:
        job = training_pb2.Job(id=new_id("job"), state=training_pb2.QUEUED, task=request.task, kind=FIND_LR,
                               lr_request=request, created_at=now_ts(), tenant=current_tenant())
        return await asyncio.to_thread(self._create, job, request.request_id)

    def _create(self, job: training_pb2.Job, request_id: str) -> training_pb2.Job:
        """The spec (dataset and base lookups) and the job's creation: coordinator calls, so off the event loop."""
        return self._jobs.create(job, self._spec(job), request_id)

    @rpc
    async def GetJob(self, request: training_pb2.GetJobRequest,
                     context: grpc.aio.ServicerContext) -> training_pb2.Job:
        return await asyncio.to_thread(self._own_job, request.id)

    @rpc
    async def ListJobs(self, request: training_pb2.ListJobsRequest,
                       context: grpc.aio.ServicerContext) -> training_pb2.ListJobsResponse:
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        jobs = await asyncio.to_thread(self._store.list_jobs, list(request.states), request.model_name, offset, limit,
                                       tenant=current_tenant())
        return training_pb2.ListJobsResponse(jobs=jobs, next_page_token=next_token(offset, limit, len(jobs)))

    @rpc
    async def CancelJob(self, request: training_pb2.CancelJobRequest,
                        context: grpc.aio.ServicerContext) -> training_pb2.Job:
        await asyncio.to_thread(self._own_job, request.id)
        return await self._jobs.cancel(request.id)

    @rpc_stream
    async def WatchJob(self, request: training_pb2.WatchJobRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[training_pb2.JobEvent]:
        if request.from_sequence < 0:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "from_sequence must be >= 0")
        await asyncio.to_thread(self._own_job, request.id)
        async for ev in self._jobs.watch(request.id, request.from_sequence):
            yield ev
