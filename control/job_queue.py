"""The order in which queued jobs are handed to Ray, and the caps on how many run at once.

Ray decides where a job runs and waits for the resources it asks for (so an autoscaler sees the demand);
this queue only decides which jobs are handed to Ray at all: first queued, first handed over, except that a
job whose tenant is at its running cap waits without holding up other tenants' jobs. Hand-written because
it is a few lines of policy over the job manager's own state, which no scheduler library knows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fineserve_common.spec import JobSpec


@dataclass
class Waiting:
    job_id: str
    tenant: str
    spec: JobSpec


@dataclass
class JobQueue:
    """max_running: jobs handed to Ray at once (0 = no cap: Ray's resources alone decide);
    max_running_per_tenant: the same for one tenant's jobs (0 = no cap)."""

    max_running: int = 0
    max_running_per_tenant: int = 0
    _waiting: list[Waiting] = field(default_factory=list)
    _running: dict[str, str] = field(default_factory=dict)  # job id -> tenant

    def push(self, job_id: str, tenant: str, spec: JobSpec) -> None:
        self._waiting.append(Waiting(job_id, tenant, spec))

    def remove(self, job_id: str) -> bool:
        """Take a waiting job out of the line (cancelled); False when it is not waiting."""
        before = len(self._waiting)
        self._waiting = [w for w in self._waiting if w.job_id != job_id]
        return len(self._waiting) < before

    def finished(self, job_id: str) -> None:
        self._running.pop(job_id, None)

    def admit(self) -> list[Waiting]:
        """Pop, in queue order, every waiting job that the caps now allow to run; they count as running."""
        admitted: list[Waiting] = []
        per_tenant = Counter(self._running.values())
        for w in list(self._waiting):
            if self.max_running and len(self._running) >= self.max_running:
                break
            if self.max_running_per_tenant and per_tenant[w.tenant] >= self.max_running_per_tenant:
                continue
            self._waiting.remove(w)
            self._running[w.job_id] = w.tenant
            per_tenant[w.tenant] += 1
            admitted.append(w)
        return admitted

    def held_back(self, job_id: str) -> str:
        """Why a waiting job has not been handed to Ray yet ("" when it is not waiting)."""
        w = next((w for w in self._waiting if w.job_id == job_id), None)
        if w is None:
            return ""
        if self.max_running and len(self._running) >= self.max_running:
            return f"waiting: {len(self._running)} jobs are running (max_running_jobs={self.max_running})"
        mine = sum(1 for t in self._running.values() if t == w.tenant)
        return (f"waiting: tenant {w.tenant!r} has {mine} running job(s) "
                f"(max_running_jobs_per_tenant={self.max_running_per_tenant})")
