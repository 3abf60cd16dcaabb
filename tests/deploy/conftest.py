"""Fixtures for the deployment tests: kubectl (for `kubectl kustomize`), KubeRay's CRD schemas, renders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from deploy.manifests import OVERLAYS, ROOT, crd_schema, needed, render

K8S_SCHEMAS = Path(os.environ.get("FINESERVE_K8S_SCHEMAS", ROOT.parent / "shared" / "k8s-schemas")).resolve()


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        needed("kubectl not found (Debian: apt-get install kubectl); it renders deploy/k8s with kustomize")
    return path


@pytest.fixture(scope="session")
def ray_schemas() -> dict[str, dict[str, Any]]:
    """Kind -> strict schema, from ../shared/k8s-schemas (KubeRay's CRDs); the manifests use only RayCluster."""
    if not K8S_SCHEMAS.is_dir():
        needed(f"KubeRay CRD schemas not found at {K8S_SCHEMAS} (set FINESERVE_K8S_SCHEMAS)")
    return {kind: crd_schema(K8S_SCHEMAS / f"ray.io_{kind.lower()}s.yaml")
            for kind in ("RayCluster",)}


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """Overlay name -> the objects `kubectl kustomize` renders from it."""
    return {overlay: render(kubectl, overlay) for overlay in OVERLAYS}
