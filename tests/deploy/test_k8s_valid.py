"""Every object of every overlay (and the example Secrets) is valid for the API server; broken ones are not."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from deploy.manifests import K8S, OVERLAYS, load_yaml_docs, one, validate


def test_overlays_exist() -> None:
    assert {"dev", "gpu", "platform"} <= set(OVERLAYS), OVERLAYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(overlay: str, rendered: dict[str, list[dict[str, Any]]],
                                        crd_schemas: dict[str, dict[str, Any]]) -> None:
    docs = rendered[overlay]
    kinds = sorted({d["kind"] for d in docs})
    for kind in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace", "NetworkPolicy",
                 "PersistentVolumeClaim", "PodDisruptionBudget", "RayCluster", "Service"):
        assert kind in kinds, f"{overlay}: no {kind} among {kinds}"
    if overlay == "platform":
        assert "ServiceMonitor" in kinds, kinds
    for doc in docs:
        validate(doc, crd_schemas)


def test_example_secrets_are_valid(crd_schemas: dict[str, dict[str, Any]]) -> None:
    docs = load_yaml_docs(K8S / "examples" / "secrets.example.yaml")
    assert {d["metadata"]["name"] for d in docs} == {"fineserve-api-keys", "fineserve-tls", "fineserve-client-ca",
                                                     "fineserve-probe-tls", "fineserve-job-store",
                                                     "fineserve-object-store"}
    for doc in docs:
        validate(doc, crd_schemas)


def _typo_field(doc: dict[str, Any]) -> None:
    port = doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    port["containerPorts"] = port.pop("containerPort")


def _string_replicas(doc: dict[str, Any]) -> None:
    doc["spec"]["replicas"] = "one"


def _hpa_typo_metric(doc: dict[str, Any]) -> None:
    doc["spec"]["metrics"][0]["resource"]["targets"] = doc["spec"]["metrics"][0]["resource"].pop("target")


def _ray_string_max(doc: dict[str, Any]) -> None:
    doc["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "four"


def _ray_typo_field(doc: dict[str, Any]) -> None:
    doc["spec"]["headGroupSpec"]["rayStartParam"] = doc["spec"]["headGroupSpec"].pop("rayStartParams")


def _ray_no_group_name(doc: dict[str, Any]) -> None:
    del doc["spec"]["workerGroupSpecs"][0]["groupName"]


def _monitor_typo_field(doc: dict[str, Any]) -> None:
    doc["spec"]["endpoint"] = doc["spec"].pop("endpoints")


def _monitor_bad_interval(doc: dict[str, Any]) -> None:
    doc["spec"]["endpoints"][0]["interval"] = "30 seconds"


def _monitor_no_selector(doc: dict[str, Any]) -> None:
    del doc["spec"]["selector"]


@pytest.mark.parametrize(("kind", "breaks"), [
    ("Deployment", _typo_field), ("Deployment", _string_replicas), ("HorizontalPodAutoscaler", _hpa_typo_metric),
    ("RayCluster", _ray_string_max), ("RayCluster", _ray_typo_field), ("RayCluster", _ray_no_group_name),
    ("ServiceMonitor", _monitor_typo_field), ("ServiceMonitor", _monitor_bad_interval),
    ("ServiceMonitor", _monitor_no_selector)])
def test_a_broken_manifest_fails_validation(kind: str, breaks: Any, rendered: dict[str, list[dict[str, Any]]],
                                            crd_schemas: dict[str, dict[str, Any]]) -> None:
    doc = copy.deepcopy(one(rendered["platform"], kind))
    validate(doc, crd_schemas)
    breaks(doc)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(doc, crd_schemas)
