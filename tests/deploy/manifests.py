"""Rendering deploy/k8s overlays and validating their objects the way the API server would, offline.

Built-in kinds go through kubernetes-validate (strict: unknown fields are errors, as `kubectl apply` rejects
them); custom resources (KubeRay's RayCluster, the Prometheus Operator's ServiceMonitor) go through their CRD's
openAPIV3Schema with jsonschema, tightened the same way.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CHART = ROOT / "deploy" / "helm" / "fineserve"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# The oldest Kubernetes the manifests target (gRPC probes are GA from 1.27).
K8S_VERSION = "1.30"


def needed(message: str) -> None:
    """What these tests need is missing: a failure under CI (CI=true), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    """kubectl or helm: the one deploy/tools/install-k8s-tools.sh put beside this interpreter, else PATH's."""
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path is None:
        needed(f"{name} not found (bash deploy/tools/install-k8s-tools.sh installs kubectl and helm)")
    return path


def render(kubectl: str, overlay: str, root: Path = K8S) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(root / "overlays" / overlay)], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def image_pins(root: Path = K8S) -> dict[str, str]:
    """Image name in the manifests -> the reference components/images pins it to (name:tag[@digest])."""
    (component,) = load_yaml_docs(root / "components" / "images" / "kustomization.yaml")
    return {i["name"]: f"{i['newName']}:{i['newTag']}" + (f"@{i['digest']}" if "digest" in i else "")
            for i in component["images"]}


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


def validate(doc: dict[str, Any], crd_schemas: dict[str, dict[str, Any]]) -> None:
    """Raises jsonschema.ValidationError / kubernetes_validate.ValidationError for an invalid object."""
    if doc["apiVersion"].split("/")[0] in ("ray.io", "monitoring.coreos.com"):
        jsonschema.Draft7Validator(crd_schemas[doc["kind"]]).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
