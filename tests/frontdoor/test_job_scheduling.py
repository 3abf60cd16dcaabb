"""The job manager's queue, running caps, cancellation at every moment of a job, worker leases, re-queueing from
the stored spec, inputs that go missing, and the typed events' proto form, against a scripted backend (the real
store; no Ray): each job's worker is a queue of events the test feeds."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from control.inputs import missing_input
from control.job_queue import JobQueue
from control.jobs import MAX_ATTEMPTS, OLDER_VERSION, JobManager
from control.store import Store
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_common.configs import BaseWeights, CollabConfig, FineTuneConfig, RatingsFormat, TabularConfig
from fineserve_common.errors import FailedPrecondition
from fineserve_common.events import (
    Batch,
    Checkpoint,
    Epoch,
    Failed,
    Heartbeat,
    JobResult,
    LrFinderResult,
    Started,
    Succeeded,
)
from fineserve_common.spec import FIND_LR, FINE_TUNE, JobSpec
from worker.jobs import PlacementGroupHeld


class WorkerLost(Exception):
    pass


END = object()
"""Fed to a run: its stream ends without a result (as Ray ends a cancelled generator's stream)."""


class ScriptedRun:
    """One submission's event stream, fed by the test (an exception fed is raised, like Ray's errors)."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.feed: asyncio.Queue[Any] = asyncio.Queue()

    def __aiter__(self) -> ScriptedRun:
        return self

    async def __anext__(self) -> asyncio.Future[Any]:
        ev = await self.feed.get()
        if ev is END:
            raise StopAsyncIteration
        if isinstance(ev, BaseException):
            raise ev
        ref: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ref.set_result(ev)
        return ref


class ScriptedBackend:
    def __init__(self, total_cpus: float = 2.0) -> None:
        self.total_cpus = total_cpus
        self.runs: dict[str, list[ScriptedRun]] = {}
        self.cancelled: list[tuple[str, bool]] = []
        self.released: list[Any] = []
        self.on_cancel: Any = RuntimeError("cancelled")
        """What a cancelled run yields next (None: nothing, the worker has not noticed yet)."""

    def cluster_gpus(self) -> float:
        return 0.0

    def job_cpus(self, requested: float, workers: int = 1) -> float:
        return requested or 1.0

    def unschedulable(self, cpus: float, gpus: float) -> str:
        return f"asks {cpus:g} CPUs" if cpus > self.total_cpus else ""

    def submit(self, spec: JobSpec, num_cpus: float, num_gpus: float) -> ScriptedRun:
        run = ScriptedRun(spec)
        self.runs.setdefault(spec.out_dir, []).append(run)  # the harness's out_dir is the job id
        return run

    def cancel(self, gen: ScriptedRun, force: bool = False) -> None:
        self.cancelled.append((gen.spec.out_dir, force))
        if force or self.on_cancel is not None:
            gen.feed.put_nowait(WorkerLost("killed") if force else self.on_cancel)

    def release(self, group: Any) -> None:
        self.released.append(group)

    @staticmethod
    def is_worker_lost(error: Exception) -> bool:
        return isinstance(error, WorkerLost)


class Models:
    """The registry's part in a job's end: what was published, and what was discarded."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.publishing = asyncio.Event()
        self.gate = asyncio.Event()
        """publish waits for it (open unless a test closes it): a cancel may arrive meanwhile."""
        self.gate.set()

    def discard_staging(self, job_id: str) -> None:
        pass

    async def publish(self, job: training_pb2.Job, card: dict[str, Any]) -> models_pb2.Model:
        self.publishing.set()
        await self.gate.wait()
        self.published.append(job.id)
        return models_pb2.Model(ref=common_pb2.ModelRef(name=job.request.model_name, version=1))


def started(pid: int = 1) -> Started:
    return Started(pid=pid, host="h")


def failed(reason: str = "boom") -> Failed:
    return Failed(reason)


def spec_of(job_id: str, tmp_path: Path, kind: str = FINE_TUNE, base: BaseWeights | None = None) -> JobSpec:
    """A spec on data set ds-<job id>, in tmp_path/ds/<job id> (Harness.create stores both)."""
    return JobSpec(kind, "image_classification", FineTuneConfig(base=base or BaseWeights("none")),
                   str(tmp_path / "ds" / job_id), out_dir=job_id)


class Harness:
    def __init__(self, tmp_path: Path, queue: JobQueue, lease_s: float = 60.0,
                 roots: tuple[Path, ...] | None = None, store: Store | None = None) -> None:
        self.tmp_path = tmp_path
        self.store = store or Store(tmp_path / "f.db")
        self.backend = ScriptedBackend()
        self.models = Models()
        self.jobs = JobManager(self.store, self.backend, self.models, queue, lease_s,  # type: ignore[arg-type]
                               allowed_roots=roots)

    def create(self, job_id: str, tenant: str = "default", cpus: float = 0.0, workers: int = 0,
               kind: str = FINE_TUNE, base: BaseWeights | None = None) -> training_pb2.Job:
        """A job on a data set of its own (ds-<job id>, uploaded: its files in tmp_path/ds/<job id>)."""
        spec = spec_of(job_id, self.tmp_path, kind, base)
        Path(spec.dataset_dir).mkdir(parents=True)
        self.store.put_dataset(datasets_pb2.Dataset(id=f"ds-{job_id}", source="upload", tenant=tenant),
                               spec.dataset_dir)
        resources = common_pb2.Resources(cpus_per_worker=cpus, workers=workers)
        job = training_pb2.Job(id=job_id, state=training_pb2.QUEUED, kind=kind, tenant=tenant,
                               request=training_pb2.CreateFineTuneJobRequest(
                                   model_name="m", resources=resources, dataset_id=f"ds-{job_id}"),
                               lr_request=training_pb2.FindLearningRateRequest(
                                   resources=resources, dataset_id=f"ds-{job_id}"))
        return self.jobs.create(job, spec, "")

    async def close(self) -> None:
        """Stop the scenario's workers (as a service stop does) so no task outlives its event loop."""
        await self.jobs.shutdown(grace=5)
        self.store.close()

    async def running(self, job_id: str) -> None:
        """A job created and started: its worker has sent Started."""
        self.create(job_id)
        await settle()
        self.run(job_id).feed.put_nowait(started())
        await settle()

    def run(self, job_id: str, attempt: int = 0) -> ScriptedRun:
        return self.backend.runs[job_id][attempt]

    def state(self, job_id: str) -> int:
        return self.jobs.get(job_id).state

    def reasons(self, job_id: str) -> list[str]:
        return [e.state.reason for e in self.store.events(job_id, 1) if e.WhichOneof("event") == "state"]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_jobs_start_in_order_with_visible_positions(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1))
        first = h.create("job-a")
        h.create("job-b")
        third = h.create("job-c")
        assert (first.queue_position, third.queue_position) == (1, 3)
        await settle()
        assert list(h.backend.runs) == ["job-a"]
        h.run("job-a").feed.put_nowait(started())
        await settle()
        assert h.state("job-a") == training_pb2.RUNNING and h.jobs.get("job-a").queue_position == 0
        assert [h.jobs.get(j).queue_position for j in ("job-b", "job-c")] == [1, 2]
        assert any("max_running_jobs=1" in r for r in h.reasons("job-b"))
        h.run("job-a").feed.put_nowait(failed())
        await settle()
        assert h.state("job-a") == training_pb2.FAILED
        assert list(h.backend.runs) == ["job-a", "job-b"], "the next in line starts when a job ends"
        assert h.jobs.get("job-c").queue_position == 2  # job-b is QUEUED until its worker starts
        await h.close()

    asyncio.run(scenario())


def test_a_tenant_at_its_cap_does_not_hold_up_others(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running_per_tenant=1))
        h.create("job-a1", tenant="alice")
        h.create("job-a2", tenant="alice")
        h.create("job-b1", tenant="bob")
        await settle()
        assert sorted(h.backend.runs) == ["job-a1", "job-b1"]
        assert any("tenant 'alice' has 1 running" in r for r in h.reasons("job-a2"))
        h.run("job-a1").feed.put_nowait(failed())
        await settle()
        assert "job-a2" in h.backend.runs
        await h.close()

    asyncio.run(scenario())


def test_cancel_a_queued_job_never_reaches_ray(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1))
        h.create("job-a")
        h.create("job-b")
        await settle()
        job = await h.jobs.cancel("job-b")
        assert job.state == training_pb2.CANCELLED and job.queue_position == 0
        h.run("job-a").feed.put_nowait(failed())
        await settle()
        assert "job-b" not in h.backend.runs
        await h.close()

    asyncio.run(scenario())


def test_a_job_that_can_never_fit_is_refused_and_not_stored(tmp_path: Path) -> None:
    h = Harness(tmp_path, JobQueue())
    with pytest.raises(FailedPrecondition) as e:
        h.create("job-big", cpus=8.0)
    assert e.value.status == "FAILED_PRECONDITION" and "8 CPUs" in e.value.message
    with pytest.raises(FailedPrecondition) as e:  # data-parallel: every worker asks for its share
        h.create("job-wide", cpus=1.5, workers=2)
    assert "3 CPUs" in e.value.message
    assert h.store.get_job("job-big") is None and h.store.get_job("job-wide") is None


def test_a_silent_worker_loses_its_lease_and_the_job_resumes(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(), lease_s=0.3)
        h.create("job-a")
        await settle()
        assert h.run("job-a").spec.heartbeat_s == pytest.approx(0.3 / 4)
        # Waiting for resources in Ray (no "started" yet) holds no lease.
        await asyncio.sleep(0.5)
        assert len(h.backend.runs["job-a"]) == 1 and not h.backend.cancelled
        h.run("job-a").feed.put_nowait(started(pid=1))
        for _ in range(6):  # heartbeats keep the lease
            await asyncio.sleep(0.1)
            h.run("job-a").feed.put_nowait(Heartbeat())
        assert len(h.backend.runs["job-a"]) == 1 and h.state("job-a") == training_pb2.RUNNING
        await asyncio.sleep(0.6)  # then silence: a hung or stopped worker
        assert h.backend.cancelled == [("job-a", True)], "the silent worker is killed"
        assert len(h.backend.runs["job-a"]) == 2 and h.state("job-a") == training_pb2.QUEUED
        assert any("no heartbeat for 0.3 s" in r and "attempt 2" in r for r in h.reasons("job-a"))
        for attempt in range(1, MAX_ATTEMPTS):
            h.run("job-a", attempt).feed.put_nowait(started(pid=attempt + 1))
            await asyncio.sleep(0.6)
        assert h.state("job-a") == training_pb2.FAILED
        assert "no heartbeat" in h.jobs.get("job-a").error
        await h.close()

    asyncio.run(scenario())


def test_a_killed_data_parallel_generator_has_its_placement_group_released(tmp_path: Path) -> None:
    """A generator killed for its lease cannot free its workers' placement group itself; the job manager does,
    or the resumed attempt would wait forever for the CPUs the old group holds. A run that ends on its own frees
    its group itself."""
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(), lease_s=0.3)
        h.create("job-a", workers=2)
        await settle()
        h.run("job-a").feed.put_nowait(started())
        h.run("job-a").feed.put_nowait(PlacementGroupHeld("group-1"))
        await asyncio.sleep(0.6)  # silence: the lease runs out
        assert h.backend.cancelled == [("job-a", True)] and h.backend.released == ["group-1"]
        assert len(h.backend.runs["job-a"]) == 2, "resumed"
        h.run("job-a", 1).feed.put_nowait(started())
        h.run("job-a", 1).feed.put_nowait(PlacementGroupHeld("group-2"))
        h.run("job-a", 1).feed.put_nowait(failed())
        await settle()
        assert h.state("job-a") == training_pb2.FAILED and h.backend.released == ["group-1"]
        assert [e.WhichOneof("event") for e in h.store.events("job-a", 1)].count("log") == 2, \
            "the group is bookkeeping, not a job event"
        await h.close()

    asyncio.run(scenario())


def test_restart_requeues_in_the_original_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1))
        for j in ("job-a", "job-b", "job-c"):
            h.create(j)
        await settle()
        h.run("job-a").feed.put_nowait(started())
        await settle()
        await h.close()

        again = Harness(tmp_path, JobQueue(max_running=1))
        assert again.jobs.resume_unfinished() == 3
        await settle()
        assert list(again.backend.runs) == ["job-a"]
        assert again.run("job-a").spec == spec_of("job-a", tmp_path).with_runtime(60.0 / 4, None), "the stored spec"
        assert [again.jobs.get(j).queue_position for j in ("job-a", "job-b", "job-c")] == [1, 2, 3]
        await again.close()

    asyncio.run(scenario())


def test_a_job_stored_without_a_spec_fails_on_restart(tmp_path: Path) -> None:
    """A job an older version left QUEUED has no stored spec: it fails with the reason, and is not rebuilt."""
    async def scenario() -> None:
        store = Store(tmp_path / "f.db")
        store.put_job(training_pb2.Job(id="job-old", state=training_pb2.RUNNING, kind=FINE_TUNE), None)
        store.close()
        h = Harness(tmp_path, JobQueue())
        assert h.jobs.resume_unfinished() == 0
        job = h.jobs.get("job-old")
        assert job.state == training_pb2.FAILED and job.error == OLDER_VERSION and not h.backend.runs
        await h.close()

    asyncio.run(scenario())


def test_typed_events_become_the_jobs_proto_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.create("job-lr", kind=FIND_LR)
        await settle()
        for ev in (started(), Batch("lr_find", 1, 1, 3, 10, loss=0.5, lr=1e-3, group_lrs=(1e-4, 1e-3)),
                   Epoch("stage-1", 1, 1, {"valid_loss": 0.25, "accuracy": 0.9}, seconds=2.0),
                   Checkpoint(1, "/ckpt"), Heartbeat(),
                   Succeeded(JobResult(lr_finder=LrFinderResult([(1e-3, 0.5)], {"valley": 1e-3})))):
            h.run("job-lr").feed.put_nowait(ev)
        await settle()
        events = h.store.events("job-lr", 1)
        batch, epoch, checkpoint = (next(e for e in events if e.WhichOneof("event") == kind)
                                    for kind in ("batch", "epoch", "checkpoint"))
        assert (batch.batch.batch, list(batch.batch.group_lrs)) == (3, pytest.approx([1e-4, 1e-3]))
        assert dict(epoch.epoch.metrics) == {"valid_loss": 0.25, "accuracy": pytest.approx(0.9)}
        assert checkpoint.checkpoint.path == "/ckpt"
        job = h.jobs.get("job-lr")
        assert job.state == training_pb2.SUCCEEDED and job.progress.batch == 3
        assert job.result.lr_finder.suggestions["valley"] == pytest.approx(1e-3)
        await h.close()

    asyncio.run(scenario())


# A cancel that was accepted ends CANCELLED, whatever the worker does after it: a cancelled Ray generator may
# raise, end without a result, report a failure (the interrupt broke its training) or even its success (it
# finished before the cancel reached it).
@pytest.mark.parametrize("after_cancel", [RuntimeError("TaskCancelledError"), END, Failed("KeyboardInterrupt"),
                                          Succeeded(JobResult(card={"task": "image_classification"}))],
                         ids=["raises", "ends-without-result", "fails", "succeeds"])
def test_an_accepted_cancel_ends_cancelled_however_the_worker_ends(tmp_path: Path, after_cancel: Any) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.backend.on_cancel = after_cancel
        await h.running("job-a")
        job = await h.jobs.cancel("job-a")
        assert job.state == training_pb2.CANCELLED, job.error
        assert h.models.published == [], "a cancelled job publishes no model"
        await h.close()

    asyncio.run(scenario())


def test_a_cancel_before_the_worker_exists_is_kept(tmp_path: Path) -> None:
    """Handed to the job manager's task but not yet to Ray: the cancel finds no generator to stop, so the task
    must not submit one."""
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.create("job-a")
        job = await h.jobs.cancel("job-a")  # at once: the manager's task for the job has not run yet
        assert job.state == training_pb2.CANCELLED and "before its worker started" in job.error
        assert "job-a" not in h.backend.runs
        await h.close()

    asyncio.run(scenario())


# The service stop interrupts every running worker, and whatever the interrupted worker then does, its job is
# left QUEUED for the next start (found by the e2e restart test: a stream that ended without a result failed it).
@pytest.mark.parametrize("after_stop", [RuntimeError("TaskCancelledError"), END, Failed("KeyboardInterrupt"),
                                        Failed("stopped", cancelled=True), WorkerLost("gone")],
                         ids=["raises", "ends-without-result", "fails", "reports-cancelled", "is-lost"])
def test_the_service_stop_leaves_a_running_job_queued_however_its_worker_ends(tmp_path: Path,
                                                                              after_stop: Any) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.backend.on_cancel = after_stop
        await h.running("job-a")
        await h.jobs.shutdown(grace=5)
        job = h.jobs.get("job-a")
        assert job.state == training_pb2.QUEUED, job.error
        assert "service stopping" in h.reasons("job-a")[-1]
        h.store.close()

    asyncio.run(scenario())


def test_a_cancel_during_the_service_stop_is_not_turned_into_a_requeue(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        await h.running("job-a")
        stopping = asyncio.create_task(h.jobs.shutdown(grace=5))
        cancelling = asyncio.create_task(h.jobs.cancel("job-a"))
        await asyncio.wait({stopping, cancelling}, timeout=5)
        assert h.state("job-a") == training_pb2.CANCELLED
        h.store.close()

    asyncio.run(scenario())


def test_a_cancel_once_the_model_is_being_published_is_not_accepted(tmp_path: Path) -> None:
    """The publish is the commit point: a cancel landing during it answers the finished job, and a published
    model's job is never recorded as cancelled."""
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.create("job-a")
        await settle()
        h.run("job-a").feed.put_nowait(started())
        h.models.gate.clear()
        h.run("job-a").feed.put_nowait(Succeeded(JobResult(card={"task": "image_classification"})))
        await h.models.publishing.wait()
        cancelling = asyncio.create_task(h.jobs.cancel("job-a"))
        await settle()
        assert not cancelling.done() and h.state("job-a") == training_pb2.RUNNING
        h.models.gate.set()
        job = await cancelling
        assert job.state == training_pb2.SUCCEEDED and h.models.published == ["job-a"]
        await h.close()

    asyncio.run(scenario())


def _base_model(tmp_path: Path) -> BaseWeights:
    (tmp_path / "models" / "base" / "1").mkdir(parents=True)
    return BaseWeights("store", name="base/1", path=str(tmp_path / "models" / "base" / "1"))


def test_a_restart_fails_only_the_jobs_whose_inputs_are_gone(tmp_path: Path) -> None:
    """Re-queued after a restart: a job whose data set, data set files, base model or weights file is gone, or
    whose stored spec this version refuses, fails with a message naming it; the others run, in order."""
    weights = tmp_path / "root" / "w.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"w")

    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1))
        h.create("job-first", tenant="alice")
        h.create("job-ds", tenant="alice")
        h.create("job-files", tenant="alice")
        h.create("job-base", tenant="alice", base=_base_model(tmp_path))
        h.create("job-weights", tenant="alice", base=BaseWeights("file", path=str(weights)))
        h.create("job-spec", tenant="alice")
        h.create("job-bob", tenant="bob")
        await settle()
        h.run("job-first").feed.put_nowait(started())
        await settle()
        await h.close()

        store = Store(tmp_path / "f.db")
        store.delete_dataset("ds-job-ds", tenant="alice")
        store.close()
        (tmp_path / "ds" / "job-files").rmdir()
        (tmp_path / "models" / "base" / "1").rmdir()
        weights.unlink()
        with sqlite3.connect(tmp_path / "f.db") as db:  # a bound this version tightened, say
            db.execute("UPDATE jobs SET spec=replace(spec, '\"batch_size\": null', '\"batch_size\": -1') "
                       "WHERE id='job-spec'")

        again = Harness(tmp_path, JobQueue(max_running=1))
        assert again.jobs.resume_unfinished() == 2
        errors = {j: again.jobs.get(j).error for j in ("job-ds", "job-files", "job-base", "job-weights", "job-spec")}
        assert {j: again.state(j) for j in errors} == dict.fromkeys(errors, training_pb2.FAILED)
        assert "data set ds-job-ds was deleted" in errors["job-ds"]
        assert "data set ds-job-files's files" in errors["job-files"] and "no longer there" in errors["job-files"]
        assert "base model base/1 was deleted" in errors["job-base"]
        assert f"base.weights_file {weights} is no longer there" in errors["job-weights"]
        assert "stored spec cannot be run" in errors["job-spec"] and "batch_size" in errors["job-spec"]
        await settle()
        assert list(again.backend.runs) == ["job-first"]
        again.run("job-first").feed.put_nowait(failed())
        await settle()
        assert list(again.backend.runs) == ["job-first", "job-bob"], "the other tenant's job runs next"
        await again.close()

    asyncio.run(scenario())


def test_a_root_taken_off_the_allowed_list_fails_the_jobs_that_read_from_it(tmp_path: Path) -> None:
    weights = tmp_path / "root" / "w.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"w")

    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1), roots=(weights.parent,))
        h.create("job-first")
        h.create("job-weights", base=BaseWeights("file", path=str(weights)))
        await h.close()
        again = Harness(tmp_path, JobQueue(max_running=1), roots=(tmp_path / "elsewhere",))
        assert again.jobs.resume_unfinished() == 1
        assert "is no longer under an allowed root" in again.jobs.get("job-weights").error
        await again.close()

    asyncio.run(scenario())


def test_an_input_gone_while_queued_fails_that_job_at_its_turn(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1))
        h.create("job-a")
        h.create("job-b", base=_base_model(tmp_path))
        h.create("job-c", tenant="bob")
        await settle()
        (tmp_path / "models" / "base" / "1").rmdir()
        h.run("job-a").feed.put_nowait(failed())
        await settle()
        assert h.state("job-b") == training_pb2.FAILED and "base model base/1 was deleted" in h.jobs.get("job-b").error
        assert list(h.backend.runs) == ["job-a", "job-c"], "never submitted; the next job runs"
        await h.close()

    asyncio.run(scenario())


def test_an_input_gone_while_running_stops_the_job_at_its_next_epoch(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.backend.on_cancel = Failed("cancelled", cancelled=True)  # what a stopped engine reports
        h.create("job-a")
        await settle()
        h.run("job-a").feed.put_nowait(started())
        h.store.delete_dataset("ds-job-a", tenant="default")
        h.run("job-a").feed.put_nowait(Epoch("stage-1", 1, 10, {}))
        await settle()
        assert h.backend.cancelled == [("job-a", False)]
        job = h.jobs.get("job-a")
        assert job.state == training_pb2.FAILED and "data set ds-job-a was deleted" in job.error
        await h.close()

    asyncio.run(scenario())


def test_a_worker_failing_on_a_missing_input_names_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue())
        h.create("job-a")
        await settle()
        h.run("job-a").feed.put_nowait(started())
        (tmp_path / "ds" / "job-a").rmdir()
        h.run("job-a").feed.put_nowait(failed("FileNotFoundError: x.png"))
        await settle()
        error = h.jobs.get("job-a").error
        assert "data set ds-job-a's files" in error and "FileNotFoundError: x.png" in error
        await h.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("config", "field", "name"), [
    (CollabConfig(ratings=RatingsFormat(ratings_file="r.csv")), "collab.ratings_file", "r.csv"),
    (CollabConfig(ratings=RatingsFormat(ratings_file="r.csv", items_file="i.csv")), "collab.items_file", "i.csv"),
    (TabularConfig(target="y", data_file="t.csv"), "tabular.data_file", "t.csv"),
])
def test_a_file_a_job_names_inside_its_data_set_is_checked(tmp_path: Path, config: Any, field: str,
                                                          name: str) -> None:
    """The collab and tabular files a spec names are looked up where each config keeps them (a wrong attribute
    here once left every collab job QUEUED for ever)."""
    for file in ("r.csv", "i.csv", "t.csv"):
        (tmp_path / file).write_text("a,b,c\n")
    spec = JobSpec(FINE_TUNE, config.task, config, str(tmp_path), out_dir="job")
    job = training_pb2.Job(id="job", kind=FINE_TUNE)
    store = Store(tmp_path / "f.db")
    assert missing_input(store, job, spec, None) == ""
    (tmp_path / name).unlink()
    assert f"{field} '{name}' is no longer in data set" in missing_input(store, job, spec, None)
    store.close()


def test_a_fault_of_the_manager_fails_its_job_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in the manager's own code for one job fails that job with a message; the queue goes
    on to the next job (it used to leave the job QUEUED for ever and its slot taken)."""
    import control.jobs

    def faulty(store: Store, job: training_pb2.Job, spec: JobSpec, roots: object) -> str:
        if job.id == "job-a":
            raise AttributeError("a bug")
        return ""

    monkeypatch.setattr(control.jobs, "missing_input", faulty)

    async def scenario() -> None:
        h = Harness(tmp_path, JobQueue(max_running=1))
        h.create("job-a")
        h.create("job-b")
        await settle()
        job = h.jobs.get("job-a")
        assert job.state == training_pb2.FAILED and "internal error in the job manager (AttributeError" in job.error
        assert list(h.backend.runs) == ["job-b"]
        await h.close()

    asyncio.run(scenario())
