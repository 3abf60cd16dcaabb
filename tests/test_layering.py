"""DESIGN.md's import rules, checked on the real modules rather than by grep alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_front_door_never_imports_torch() -> None:
    mods = _loaded_after("import service.server, service.main")
    assert "torch" not in mods and "torchvision" not in mods


def test_engine_imports_no_grpc_ray_or_service() -> None:
    mods = _loaded_after("import worker.engine")
    assert not {m for m in mods if m.split(".")[0] in {"grpc", "ray", "service"}}


def test_sdk_imports_no_torch_or_ray() -> None:
    mods = _loaded_after("import fineserve_client")
    assert not {m for m in mods if m.split(".")[0] in {"torch", "ray", "numpy"}}


def test_control_plane_imports_no_torch_or_front_door() -> None:
    mods = _loaded_after("import control.coordinator")
    assert not {m for m in mods if m.split(".")[0] in {"torch", "torchvision", "service"}}
