"""The job manager's side of Ray: submitting a job's event generator, sizing it, cancelling it, and telling a lost
worker from a job that failed.

Worker code is referenced by import only inside submit, so the coordinator never loads torch: the entrypoints
import the engine in their Ray workers.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from fineserve_common.spec import JobSpec
from worker.jobs import JOBS_PER_WORKER, WorkerLost

log = logging.getLogger(__name__)


def job_entrypoints() -> dict[str, Any]:
    """The job tasks, by kind, as Ray remote functions. No Ray-level retries: the job manager re-submits a lost
    job itself, so the retry is an event. A worker process runs at most JOBS_PER_WORKER jobs, then Ray starts a
    fresh one: what a long-lived process keeps from job to job stays bounded."""
    from worker.data_parallel import run_data_parallel_fine_tune
    from worker.jobs import run_find_lr, run_fine_tune

    task = ray.remote(max_retries=0, max_calls=JOBS_PER_WORKER)
    return {"fine_tune": task(run_fine_tune), "find_lr": task(run_find_lr),
            "data_parallel": task(run_data_parallel_fine_tune)}


class RayJobs:
    """local: the front door started this Ray (its CPUs are all there will be); job_cpus: the server's CPUs per
    job worker (0 = decide per job, see job_cpus)."""

    def __init__(self, local: bool, job_cpus: float = 0.0) -> None:
        self._local = local
        self._job_cpus = job_cpus
        self._entrypoints: dict[str, Any] = {}

    @staticmethod
    def cluster_gpus() -> float:
        return float(ray.cluster_resources().get("GPU", 0.0))

    def job_cpus(self, requested: float, workers: int = 1) -> float:
        """CPUs per worker: the request's, else the server's job_cpus, else every CPU of a local Ray for a
        one-worker job and one CPU for each worker of a data-parallel job."""
        if requested > 0:
            return requested
        if self._job_cpus > 0:
            return self._job_cpus
        if workers > 1:
            return 1.0
        return float(ray.cluster_resources().get("CPU", 1.0)) if self._local else 1.0

    def submit(self, spec: JobSpec, num_cpus: float, num_gpus: float) -> Any:
        """Ray's ObjectRefGenerator of the job's events. num_cpus and num_gpus are per worker (job_cpus): a
        data-parallel job (spec.workers > 1) asks for them on each of its Ray Train workers."""
        if not self._entrypoints:
            self._entrypoints = job_entrypoints()
        if spec.workers > 1:
            # The generator only waits on Ray Train's controller: the workers hold the job's CPUs and GPUs.
            return self._entrypoints["data_parallel"].options(num_cpus=0, num_gpus=0).remote(spec, num_cpus, num_gpus)
        return self._entrypoints[spec.kind].options(num_cpus=num_cpus, num_gpus=num_gpus).remote(spec)

    def unschedulable(self, cpus: float, gpus: float) -> str:
        """Why a local Ray can never run a job asking for this much ("" if it can). A cluster may grow (its
        autoscaler sees the waiting job), so there the job waits in QUEUED instead."""
        if not self._local:
            return ""
        total = ray.cluster_resources()
        for name, ask in (("CPU", cpus), ("GPU", gpus)):
            if ask > total.get(name, 0.0):
                return (f"the job asks for {ask:g} {name}(s) in all but this server's Ray has "
                        f"{total.get(name, 0.0):g}; ask for less (resources.workers, cpus_per_worker, gpus_per_worker)")
        return ""

    @staticmethod
    def cancel(gen: Any, force: bool = False) -> None:
        """force: kill the worker process (a hung or unreachable one) instead of interrupting the job."""
        ray.cancel(gen, force=force)

    @staticmethod
    def release(group: Any) -> None:
        """Free a data-parallel run's placement group after its generator was killed (a no-op when the run had
        removed it itself); a failure is logged, as the job has moved on."""
        from worker.data_parallel import release_placement_group

        try:
            release_placement_group(group)
        except Exception as e:
            log.warning("could not remove placement group %s: %s", group, e)

    @staticmethod
    def is_worker_lost(error: Exception) -> bool:
        """The process or node running the job died, or one of its data-parallel training workers did (as
        opposed to the job's own code failing)."""
        return isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError
                          | ray.exceptions.ObjectLostError | ray.exceptions.LocalRayletDiedError | WorkerLost
                          ) or isinstance(getattr(error, "cause", None), WorkerLost)
