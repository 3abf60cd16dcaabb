"""Memory of the Ray worker processes over a series of small fine-tune jobs, submitted as the job manager does
(control.ray_jobs.RayJobs.submit, one job at a time on a local Ray), each on a data set of its own at a size of its
own, as different tenants' jobs would be. After each job it prints the process that ran it (from the job's
Started event), that process's resident memory, and the resident memory of every Ray worker process together: a
service that holds its memory flat shows a flat last column, whether its workers are reused or recycled.

    python benchmarks/worker_memory.py              # 10 jobs
    python benchmarks/worker_memory.py --jobs 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil
import ray
from PIL import Image

from control.ray_jobs import RayJobs
from fineserve_common.configs import BaseWeights, FineTuneConfig
from fineserve_common.events import Failed, Started
from fineserve_common.spec import FINE_TUNE, JobSpec

SIZES = (16, 24, 32, 40)  # each job's image size: a new shape for every allocator and cache on the way
MB = 1024 * 1024


def image_folder(root: Path, seed: int, per_class: int = 12) -> Path:
    """Two classes of flat-coloured 48 px PNGs (with a little per-image variation)."""
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            shade = tuple(min(255, c + (seed * 7 + i * 3) % 30) for c in colour)
            Image.new("RGB", (48, 48), shade).save(root / label / f"{i}.png")
    return root


def ray_workers() -> list[psutil.Process]:
    """The worker processes of this script's Ray (the raylet's children that run Python tasks)."""
    raylets = [p for p in psutil.Process().children(recursive=True) if p.name() == "raylet"]
    found = []
    for p in (c for r in raylets for c in r.children()):
        try:
            command = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if command.startswith("ray::") or "default_worker.py" in command:
            found.append(p)
    return found


def rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def run_job(jobs: RayJobs, spec: JobSpec) -> int:
    """Run one job to its end; the pid of the worker that ran it."""
    pid = 0
    for ref in jobs.submit(spec, 1.0, 0.0):
        ev = ray.get(ref)
        if isinstance(ev, Started):
            pid = ev.pid
        elif isinstance(ev, Failed):
            raise RuntimeError(f"job failed: {ev.reason}")
    return pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        jobs = RayJobs(local=True, job_cpus=1.0)
        with tempfile.TemporaryDirectory(prefix="worker-memory-") as tmp:
            print(f"{'job':>4} {'image px':>8} {'worker pid':>10} {'its RSS MB':>10} {'all workers MB':>14} "
                  f"{'seconds':>8}")
            for n in range(args.jobs):
                data = image_folder(Path(tmp) / f"ds-{n}", n)
                config = FineTuneConfig(base=BaseWeights("none"), image_size=SIZES[n % len(SIZES)], batch_size=8,
                                        epochs=args.epochs, freeze_epochs=0, precision="fp32", device="cpu")
                spec = JobSpec(FINE_TUNE, "image_classification", config, str(data), str(Path(tmp) / f"job-{n}"),
                               heartbeat_s=5.0)
                started = time.monotonic()
                pid = run_job(jobs, spec)
                seconds = time.monotonic() - started
                time.sleep(1.0)  # a recycled worker exits once its task has returned
                mine = rss(psutil.Process(pid)) if psutil.pid_exists(pid) else 0
                total = sum(rss(p) for p in ray_workers())
                print(f"{n + 1:>4} {config.image_size:>8} {pid:>10} "
                      f"{(f'{mine / MB:.0f}' if mine else 'exited'):>10} {total / MB:>14.0f} {seconds:>8.1f}",
                      flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
