"""deploy/helm/fineserve renders the same objects as deploy/k8s: for each kustomize overlay, `helm template` with
the chart's ci/<overlay>-values.yaml, object for object. Two differences are the tools' own and are normalised:
kustomize names the settings ConfigMap by a hash of its content, Helm keeps the name and rolls the pods with a
checksum annotation; and the chart makes no Namespace (helm installs into one)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.manifests import CHART, OVERLAYS, ROOT, image_pins, one, render, validate
from deploy.test_platform import assert_pinned, pod_templates

HASH_SUFFIX = re.compile(r"^(fineserve-config)-[a-z0-9]{10}$")
CHECKSUM = "checksum/settings"


def helm_render(helm: str, overlay: str, docs: list[dict[str, Any]], *extra: str,
                chart: Path = CHART) -> list[dict[str, Any]]:
    """The chart rendered into the overlay's namespace with its ci values."""
    namespace = one(docs, "Namespace")["metadata"]["name"]
    out = subprocess.run([helm, "template", "fineserve", str(chart), "--namespace", namespace,
                          "-f", str(chart / "ci" / f"{overlay}-values.yaml"), *extra],
                         check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def normalised(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, with the tools' own differences taken out."""
    out = {}
    for doc in copy.deepcopy(docs):
        if doc["kind"] == "Namespace":
            continue
        name = doc["metadata"]["name"] = HASH_SUFFIX.sub(r"\1", doc["metadata"]["name"])
        if doc["kind"] == "Deployment":
            template = doc["spec"]["template"]
            template["metadata"].get("annotations", {}).pop(CHECKSUM, None)
            for container in template["spec"]["containers"]:
                for ref in (s["configMapRef"] for s in container.get("envFrom", []) if "configMapRef" in s):
                    ref["name"] = HASH_SUFFIX.sub(r"\1", ref["name"])
        assert (doc["kind"], name) not in out, f"two {doc['kind']} {name}"
        out[(doc["kind"], name)] = doc
    return out


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two parsed objects differ, as readable paths (lists compared in order, as Kubernetes does)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return [d for k in sorted(set(left) | set(right), key=str)
                for d in (differences(left[k], right[k], f"{path}.{k}") if k in left and k in right
                          else [f"{path}.{k}: only in {'kustomize' if k in left else 'helm'}"])]
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if left == right else [f"{path}: kustomize {left!r} != helm {right!r}"]


def assert_same_objects(kustomized: list[dict[str, Any]], helmed: list[dict[str, Any]]) -> None:
    left, right = normalised(kustomized), normalised(helmed)
    assert set(left) == set(right), f"only kustomize: {set(left) - set(right)}; only helm: {set(right) - set(left)}"
    diffs = [d for key in sorted(left) for d in differences(left[key], right[key], "/".join(key))]
    assert not diffs, "\n".join(diffs[:20])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_chart_renders_what_kustomize_renders(overlay: str, helm: str, rendered: dict[str, list[dict[str, Any]]],
                                                  crd_schemas: dict[str, dict[str, Any]]) -> None:
    helmed = helm_render(helm, overlay, rendered[overlay])
    assert_same_objects(rendered[overlay], helmed)
    for doc in helmed:
        validate(doc, crd_schemas)


def test_a_settings_change_rolls_the_charts_front_doors(helm: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["dev"]
    before, after = (one(helm_render(helm, "dev", docs, *extra), "Deployment")["spec"]["template"]
                     for extra in ((), ("--set-string", "settings.FINESERVE_GRACE_SECONDS=25")))
    assert before["metadata"]["annotations"][CHECKSUM] != after["metadata"]["annotations"][CHECKSUM]


def test_a_chart_that_drifts_from_kustomize_fails(helm: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["platform"]
    drifted = helm_render(helm, "platform", docs, "--set", "frontDoor.maxReplicas=9",
                          "--set", "serviceMonitor.interval=15s")
    with pytest.raises(AssertionError, match=r"maxReplicas: kustomize 8 != helm 9"):
        assert_same_objects(docs, drifted)
    missing = helm_render(helm, "platform", docs, "--set", "jobStore.secretName=")
    with pytest.raises(AssertionError, match="env"):
        assert_same_objects(docs, missing)


def test_the_release_step_pins_both_renders_to_the_pushed_digests(kubectl: str, helm: str, tmp_path: Path) -> None:
    """deploy/tools/pin_images.py (called by release.sh after the push) rewrites both files; both renders then
    run exactly the digests given, and still agree."""
    deploy = tmp_path / "deploy"
    for part in ("k8s", "helm"):
        shutil.copytree(ROOT / "deploy" / part, deploy / part)
    digests = {"cpu": "sha256:" + "a" * 64, "cuda": "sha256:" + "b" * 64}
    pin = [sys.executable, str(ROOT / "deploy" / "tools" / "pin_images.py"), "--deploy", str(deploy),
           "--repository", "registry.example.org/team/fineserve"]
    subprocess.run([*pin, "--version", "0.2.0", "--cpu-digest", digests["cpu"], "--cuda-digest", digests["cuda"]],
                   check=True)
    expected = {f"registry.example.org/team/fineserve:0.2.0-{v}@{d}" for v, d in digests.items()}
    assert set(image_pins(deploy / "k8s").values()) == expected
    docs = render(kubectl, "platform", deploy / "k8s")
    helmed = helm_render(helm, "platform", docs, chart=deploy / "helm" / "fineserve")
    assert_same_objects(docs, helmed)
    for objects in (docs, helmed):
        assert_pinned(objects)
        assert {c["image"] for t in pod_templates(objects) for c in t["spec"]["containers"]} == expected
    moving = subprocess.run([*pin, "--version", "cpu"], capture_output=True, text=True)
    assert moving.returncode != 0 and "release version" in moving.stderr


def test_helm_lint_strict_passes_with_each_overlays_values(helm: str) -> None:
    values = sorted((CHART / "ci").glob("*-values.yaml"))
    assert [v.name for v in values] == [f"{o}-values.yaml" for o in OVERLAYS]
    for file in values:
        result = subprocess.run([helm, "lint", "--strict", str(CHART), "-f", str(file)], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout + result.stderr
