"""benchmarks/train_throughput.py runs and prints its table (no timing assertions: CI machines vary)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_throughput_benchmark_quick_mode_prints_the_table() -> None:
    out = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--quick", "--device", "cpu"], cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=600).stdout
    print(out)
    lines = out.splitlines()
    assert lines[1].split() == ["config", "engine", "img/s", "plain", "img/s", "ratio"]
    rows = [line for line in lines if line.startswith("cpu resnet18")]
    assert [row.split()[2:4] for row in rows] == [["64px", "fp32"], ["64px", "bf16"], ["128px", "fp32"],
                                                  ["128px", "bf16"]]
    assert all(float(row.split()[-1]) > 0 for row in rows)
