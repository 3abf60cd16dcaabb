"""A job cancelled while its worker process is still importing torch leaves that process able to run the next
job. Ray cancels a running task with KeyboardInterrupt in its main thread; an import cut off there leaves torch
half-initialised in sys.modules, and every later job on the reused worker then fails on `import torch`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, signal, sys, threading, time
from fineserve_common.events import JobResult
from worker.jobs import stream_work

# As in a Ray worker, SIGINT raises KeyboardInterrupt (a test run started in the background would pass SIG_IGN on)
signal.signal(signal.SIGINT, signal.default_int_handler)
assert "torch" not in sys.modules

def cancel_mid_import():  # half-way through torch's own import (torch._C loaded, torch.nn begun)
    while "torch.nn" not in sys.modules:
        time.sleep(0.001)
    print("cancelled while the engine was", "imported" if "worker.engine" in sys.modules else "not yet imported")
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=cancel_mid_import, daemon=True).start()
try:
    list(stream_work(lambda on_event, should_stop: JobResult(), heartbeat_s=30.0))
    print("NOT INTERRUPTED")
except KeyboardInterrupt:
    print("interrupted")
*_, outcome = stream_work(lambda on_event, should_stop: JobResult(metrics={"answer": 42.0}), heartbeat_s=30.0)
print("next job:", outcome.result.metrics)
"""


def test_a_cancel_during_the_torch_import_leaves_the_worker_usable() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": f"{ROOT}:{ROOT / 'clients' / 'python'}", "PATH": "/usr/bin:/bin"})
    print(run.stdout, run.stderr[-3000:])
    assert "cancelled while the engine was not yet imported" in run.stdout, "the cancel came too late to show anything"
    assert "NOT INTERRUPTED" not in run.stdout
    assert "interrupted" in run.stdout
    assert "next job: {'answer': 42.0}" in run.stdout
