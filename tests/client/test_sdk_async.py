"""AsyncClient: the same surface as Client over grpc.aio, against real in-process gRPC servers."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from test_client_upload import RecordingDatasets, _make_folder
from test_client_wait import EVENTS, FlakyTraining, _state

from fineserve.v1 import training_pb2
from fineserve_client import AsyncClient, Client, Job, JobCancelled, JobFailed, Model, errors


def _public(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, callable) if not name.startswith("_")}


def test_same_surface_as_client():
    assert _public(Client) == _public(AsyncClient)


def test_reads_and_inference_are_awaitable_and_typed(serve, models_servicer, inference_servicer):
    target = serve(models_servicer, inference_servicer)

    async def run():
        async with AsyncClient(target) as fs:
            latest = fs.get_model("pets")
            assert inspect.isawaitable(latest)
            return await latest, await fs.list_models(), await fs.classify("pets", [b"cat", b"dog"], top_k=1)

    model, models, classified = asyncio.run(run())
    assert isinstance(model, Model) and (model.name, model.version, model.loaded_replicas) == ("pets", 3, 2)
    assert [m.version for m in models] == [2, 1]  # both pages
    assert [(c.name, c.label) for c in classified] == [("bytes[0]", "cat"), ("bytes[1]", "dog")]


def test_wait_resumes_and_fine_tune_raises_typed_errors(serve):
    flaky = FlakyTraining(break_after=3)
    failing = FlakyTraining(break_after=99, final_state=training_pb2.FAILED,
                            events=[_state(1, training_pb2.RUNNING), _state(2, training_pb2.FAILED, "out of memory")])

    class Creating(FlakyTraining):
        def CreateFineTuneJob(self, request, context):
            return training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=request)

    creating = Creating(break_after=99, final_state=training_pb2.CANCELLED,
                        events=[*EVENTS[:1], _state(2, training_pb2.CANCELLED)])

    async def run():
        async with AsyncClient(serve(flaky)) as fs:
            job = await fs.wait("job-1", progress=False)
            events = [e async for e in fs.watch_job("job-1", from_sequence=5)]
        async with AsyncClient(serve(failing)) as fs:
            with pytest.raises(JobFailed, match="out of memory") as failed:
                await fs.wait("job-1", progress=False, check=True)
        async with AsyncClient(serve(creating)) as fs:
            with pytest.raises(JobCancelled):
                await fs.fine_tune("ds-1", "pets", progress=False)
            kept = await fs.fine_tune("ds-1", "pets", progress=False, check=False)
        return events, job, failed.value, kept

    events, job, failed, kept = asyncio.run(run())
    assert [e.sequence for e in events] == [5, 6]
    assert isinstance(job, Job) and job.state == training_pb2.SUCCEEDED and job.model == "pets/1"
    assert flaky.from_sequences == [0, 4, 5]  # wait's first stream, its resume after UNAVAILABLE, the watch
    assert failed.job.error == "out of memory" and failed.state == "FAILED"
    assert kept.state == training_pb2.CANCELLED


def test_upload_and_errors(serve, tmp_path):
    _make_folder(tmp_path / "pets")
    servicer = RecordingDatasets()
    target = serve(servicer)

    async def run():
        async with AsyncClient(target) as fs:
            ds = await fs.upload_dataset(tmp_path / "pets", name="p")
            with pytest.raises(errors.Unimplemented):
                await fs.get_job("job-1")
            return ds

    ds = asyncio.run(run())
    assert ds.id == "ds-0123456789abcdef" and servicer.messages[0].header.name == "p"
