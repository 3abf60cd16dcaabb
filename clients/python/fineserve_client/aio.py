"""The asyncio client: :class:`AsyncClient` has :class:`~fineserve_client.Client`'s methods as coroutines over a
``grpc.aio`` channel. The areas' operations are the same plans (``connection.py``), run here with awaited
calls; only following a job (a stream and sleeps) is written again, with :class:`~.following.Follow`'s rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, TypeVar

import grpc

from fineserve.v1 import training_pb2

from .connection import BaseConnection, Blocking, Call, Plan, _failed
from .datasets import DatasetsArea
from .errors import Unavailable, from_rpc_error
from .following import FINE_TUNE_DOC, WAIT_DOC, Follow
from .inference import InferenceArea
from .models import ModelsArea
from .progress import ProgressBar
from .records import Job
from .training import TrainingArea

__all__ = ["AsyncClient"]

T = TypeVar("T")
A = TypeVar("A", bound="AsyncConnection")


class AsyncConnection(BaseConnection):
    """A ``grpc.aio`` channel; plans run with awaited calls and ``asyncio.sleep`` between retries."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, Any]]) -> grpc.aio.Channel:
        if credentials is not None:
            return grpc.aio.secure_channel(target, credentials, options=options)
        return grpc.aio.insecure_channel(target, options=options)

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()

    async def __aenter__(self: A) -> A:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, plan: Plan[T]) -> T:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Blocking):
                    try:
                        done = await asyncio.to_thread(step.function)
                    except Exception as e:
                        step = plan.throw(e)
                    else:
                        step = plan.send(done)
                    continue
                try:
                    answer = await self._send(step)
                except grpc.RpcError as e:
                    step = _failed(plan, e)
                else:
                    step = plan.send(answer)
        except StopIteration as stop:
            return stop.value

    async def _send(self, call: Call) -> Any:
        rpc, deadline = self._prepare(call)
        attempt = 1
        while True:
            try:
                return await rpc(call.request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as e:
                delay = self.retry.next_delay(e, attempt, deadline) if call.retry else None
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1


class AsyncClient(DatasetsArea, TrainingArea, ModelsArea, InferenceArea, AsyncConnection):
    """:class:`~fineserve_client.Client` for asyncio: the same arguments, settings and methods, each a coroutine
    (``watch_job`` an async iterator). Use ``async with AsyncClient() as fs:`` or ``await fs.close()``.

    One event loop per client: gRPC's asyncio channel belongs to the loop it was first used in.
    """

    async def watch_job(
        self, id: str, from_sequence: int = 0, *, timeout: float | None = None
    ) -> AsyncIterator[training_pb2.JobEvent]:
        """The job's events from ``from_sequence`` on, ending after the one that makes the job terminal."""
        call = self._training.WatchJob(training_pb2.WatchJobRequest(id=id, from_sequence=from_sequence),
                                       timeout=timeout, metadata=self._metadata)
        try:
            async for event in call:
                yield event
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()

    async def wait(self, id: str, progress: bool | ProgressBar = True, timeout: float | None = None, *,
                   check: bool = False, max_reconnects: int = 5) -> Job:
        follow = Follow(id, progress, timeout, max_reconnects)
        try:
            while True:
                try:
                    async with aclosing(self.watch_job(id, follow.next_sequence, timeout=follow.remaining())) as events:
                        async for event in events:
                            if follow.seen(event):
                                break
                        else:
                            follow.stream_ended(await self.get_job(id))
                    break
                except Unavailable as e:
                    await asyncio.sleep(follow.broke(e))
        finally:
            follow.bar.close()
        return follow.outcome(await self.get_job(id), check)

    async def fine_tune(self, dataset_id: str, model_name: str, *, progress: bool | ProgressBar = True,
                        timeout: float | None = None, check: bool = True, **job_options: Any) -> Job:
        job = await self.create_fine_tune_job(dataset_id, model_name, **job_options)
        return await self.wait(job.id, progress=progress, timeout=timeout, check=check)

    wait.__doc__ = WAIT_DOC
    fine_tune.__doc__ = FINE_TUNE_DOC
