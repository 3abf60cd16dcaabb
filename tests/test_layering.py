"""ARCHITECTURE.md's import rules, checked on the real modules rather than by grep alone: every module of a
package is imported in a fresh interpreter, and the modules loaded after it must not include the forbidden
packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"fineserve_common": ROOT / "common" / "fineserve_common", "service": ROOT / "service",
           "control": ROOT / "control", "worker.engine": ROOT / "worker" / "engine",
           "fineserve_client": ROOT / "clients" / "python" / "fineserve_client"}


def _modules(package: str) -> list[str]:
    """The package and every module below it, from its folder (so a module nothing imports yet counts too)."""
    root = SOURCES[package]
    names = {".".join((package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
             for path in root.rglob("*.py") if path.stem != "__main__"}
    return sorted(names)


def _loaded_after(package: str) -> set[str]:
    code = "\n".join(f"import {m}" for m in _modules(package))
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {m.split(".")[0] for m in out.split()} | {".".join(m.split(".")[:2]) for m in out.split()}


@pytest.mark.parametrize(("package", "forbidden"), [
    # pure Python: the SDK, the front door, the control plane, the workers and the engine all import it
    ("fineserve_common", {"torch", "grpc", "ray", "google", "numpy", "fineserve", "service", "control", "worker"}),
    ("service", {"torch", "torchvision", "worker.engine"}),
    ("control", {"torch", "torchvision", "service", "worker.engine"}),
    ("worker.engine", {"grpc", "ray", "service", "control", "fineserve"}),
    ("fineserve_client", {"torch", "ray", "numpy", "service", "control", "worker"}),
])
def test_package_imports_only_what_its_layer_may(package: str, forbidden: set[str]) -> None:
    assert not _loaded_after(package) & forbidden


def test_every_layer_is_checked() -> None:
    """A new module is walked from its folder; a renamed folder must be renamed here too."""
    assert all(path.is_dir() for path in SOURCES.values())
    assert len(_modules("worker.engine")) > 40 and "worker.engine.vision.family" in _modules("worker.engine")
