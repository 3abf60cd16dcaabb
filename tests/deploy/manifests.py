"""Rendering deploy/k8s overlays and validating their objects the way the API server would, offline.

Built-in kinds go through kubernetes-validate (strict: unknown fields are errors, as `kubectl apply` rejects
them); RayCluster goes through the openAPIV3Schema of KubeRay's CRD with jsonschema, tightened the same way.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# The oldest Kubernetes the manifests target (gRPC probes are GA from 1.27).
K8S_VERSION = "1.30"


def needed(message: str) -> None:
    """What these tests need is missing: a failure under CI (CI=true), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def render(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_schema(crd_file: Path, version: str = "v1") -> dict[str, Any]:
    """The CRD's schema for `version`, with unknown fields refused wherever the CRD does not preserve them."""
    # libyaml's loader where built in: a CRD is about 1 MB of YAML, several seconds for the pure-Python one.
    crd = yaml.load(crd_file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return _strict(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        for value in node.values():
            _strict(value)
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


def validate(doc: dict[str, Any], ray_schemas: dict[str, dict[str, Any]]) -> None:
    """Raises jsonschema.ValidationError / kubernetes_validate.ValidationError for an invalid object."""
    if doc["apiVersion"].split("/")[0] == "ray.io":
        jsonschema.Draft7Validator(ray_schemas[doc["kind"]]).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
