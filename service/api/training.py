"""Training servicer: fine-tune jobs and LR range tests on Ray, their events, cancellation."""

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
from fineserve_common.errors import InvalidArgument
from fineserve_common.spec import FIND_LR, FINE_TUNE, JobSpec
from service.errors import rpc, rpc_stream
from service.ids import new_id, next_token, page_bounds
from service.job_requests import find_lr_spec, fine_tune_spec
from service.tenancy import current_tenant, owned


class TrainingServicer(training_pb2_grpc.TrainingServicer):
    def __init__(self, store: Store, jobs: RemoteJobs, registry: Registry, allowed_roots: tuple[Path, ...]) -> None:
        self._store = store
        self._jobs = jobs
        self._registry = registry
        self._roots = allowed_roots

    def _own_job(self, job_id: str) -> training_pb2.Job:
        return owned(self._store.for_tenant(current_tenant()).get_job(job_id), f"job {job_id!r}")

    @rpc
    async def CreateFineTuneJob(self, request: training_pb2.CreateFineTuneJobRequest,
                                context: grpc.aio.ServicerContext) -> training_pb2.Job:
        return await self._submit(FINE_TUNE, request, request=request)

    @rpc
    async def FindLearningRate(self, request: training_pb2.FindLearningRateRequest,
                               context: grpc.aio.ServicerContext) -> training_pb2.Job:
        return await self._submit(FIND_LR, request, lr_request=request)

    async def _submit(self, kind: str, request: Any, /, **as_field: Any) -> training_pb2.Job:
        """A new job of the caller's, kept in the Job under the field its request goes in (as_field)."""
        job = training_pb2.Job(id=new_id("job"), state=training_pb2.QUEUED, task=request.task, kind=kind,
                               created_at=now_ts(), tenant=current_tenant(), **as_field)
        return await asyncio.to_thread(self._create, job, request)

    def _create(self, job: training_pb2.Job, request: Any) -> training_pb2.Job:
        """The spec, checked once here and stored with the job, and the job's creation: dataset and base
        lookups and a coordinator call, so off the event loop."""
        own = self._store.for_tenant(job.tenant)
        spec: JobSpec = (fine_tune_spec(request, own, self._roots, self._registry.staging_dir(job.id))
                         if job.kind == FINE_TUNE else find_lr_spec(request, own, self._roots))
        return self._jobs.create(job, spec, request.request_id)

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
        for job in jobs:  # GetJob's alone: a page of 500 jobs with their confusion matrices may not fit a message
            if job.result.HasField("interpretation"):
                job.result.ClearField("interpretation")
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
            raise InvalidArgument("from_sequence must be >= 0")
        await asyncio.to_thread(self._own_job, request.id)
        async for ev in self._jobs.watch(request.id, request.from_sequence):
            yield ev
