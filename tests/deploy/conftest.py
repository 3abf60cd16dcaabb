"""Fixtures for the deployment tests: kubectl (for `kubectl kustomize`), helm, the CRD schemas, renders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from deploy.manifests import OVERLAYS, ROOT, SCHEMAS, crd_schema, needed, render, tool

K8S_SCHEMAS = Path(os.environ.get("FINESERVE_K8S_SCHEMAS", ROOT.parent / "shared" / "k8s-schemas")).resolve()


@pytest.fixture(scope="session")
def kubectl() -> str:
    return tool("kubectl")


@pytest.fixture(scope="session")
def helm() -> str:
    return tool("helm")


@pytest.fixture(scope="session")
def crd_schemas() -> dict[str, dict[str, Any]]:
    """Kind -> strict schema of each custom resource the manifests use: KubeRay's RayCluster from
    ../shared/k8s-schemas, the Prometheus Operator's ServiceMonitor from the fixture in schemas/."""
    if not K8S_SCHEMAS.is_dir():
        needed(f"KubeRay CRD schemas not found at {K8S_SCHEMAS} (set FINESERVE_K8S_SCHEMAS)")
    return {"RayCluster": crd_schema(K8S_SCHEMAS / "ray.io_rayclusters.yaml"),
            "ServiceMonitor": crd_schema(SCHEMAS / "monitoring.coreos.com_servicemonitors.subset.yaml")}


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """Overlay name -> the objects `kubectl kustomize` renders from it."""
    return {overlay: render(kubectl, overlay) for overlay in OVERLAYS}
