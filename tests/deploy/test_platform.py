"""What a platform team checks in deploy/k8s beyond schema validity: pinned images, settings changes that roll
the front doors, front doors spread over nodes, a ServiceMonitor that reaches each front door's metrics port,
and the PostgreSQL URL taken from a Secret. Each check is a function that a broken copy must fail."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from deploy.manifests import K8S, OVERLAYS, image_pins, one, render
from deploy.test_frontdoor_contract import container_env, frontdoor, parse_with_env

# A release tag (0.1.0-cpu) or a digest; never a tag a re-push moves (cpu, cuda, latest, main).
PINNED = re.compile(r"^[^@\s]+(@sha256:[0-9a-f]{64}|:\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?)$")
# kustomize's configMapGenerator suffix: a hash of the content.
HASHED = re.compile(r"^fineserve-config-[a-z0-9]{10}$")


def pod_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod template: the front door's and each Ray group's."""
    templates = [one(docs, "Deployment", "fineserve-frontdoor")["spec"]["template"]]
    cluster = one(docs, "RayCluster")
    for group in [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]:
        templates.append(group["template"])
    return templates


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against a set of labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {"In": present and value in e.get("values", []), "NotIn": not present or value not in e.get("values", []),
              "Exists": present, "DoesNotExist": not present}[e["operator"]]
        if not ok:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def assert_pinned(docs: list[dict[str, Any]]) -> None:
    for template in pod_templates(docs):
        spec = template["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert PINNED.match(container["image"]), f"{container['name']}: {container['image']} is not pinned"
            assert container.get("imagePullPolicy", "IfNotPresent") != "Never", container["name"]


def assert_spread(docs: list[dict[str, Any]]) -> None:
    """The front doors' anti-affinity selects the front-door pods (itself included) and no Ray pod, per node."""
    pod = one(docs, "Deployment", "fineserve-frontdoor")["spec"]["template"]
    (term,) = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["weight"] == 100 and term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname", term
    selector = term["podAffinityTerm"]["labelSelector"]
    assert selects(selector, pod["metadata"]["labels"]), f"{selector} does not select the front-door pods"
    for ray_pod in pod_templates(docs)[1:]:
        assert not selects(selector, ray_pod["metadata"]["labels"]), f"{selector} selects Ray pods too"


def assert_settings_roll(docs: list[dict[str, Any]]) -> None:
    """The front door's settings come from the generated, content-hashed ConfigMap, and nothing else is generated
    unreferenced (a generator whose name the Deployment does not use would change nothing on a roll)."""
    _, _, container = frontdoor(docs)
    refs = {s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s}
    maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert refs and refs <= maps, f"the front door reads {refs}, the overlay has {maps}"
    assert all(HASHED.match(name) for name in refs), f"{refs}: not a generated (hash-named) ConfigMap"
    assert maps <= refs, f"ConfigMaps {maps - refs} are generated but nothing reads them"


def assert_scraped(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ServiceMonitor endpoint names a port of a Service it selects, and that Service sends it to the front
    doors' metrics port (the one the front door serves /metrics on), pod by pod (headless)."""
    deployment, _, container = frontdoor(docs)
    settings, _ = parse_with_env(monkeypatch, container_env(docs, container))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitors, "no ServiceMonitor"
    for monitor in monitors:
        services = [d for d in docs if d["kind"] == "Service"
                    and selects(monitor["spec"]["selector"], d["metadata"].get("labels", {}))]
        assert services, f"{monitor['metadata']['name']} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint.get("path", "/metrics") == "/metrics"
            ports = [(s, p) for s in services for p in s["spec"]["ports"] if p.get("name") == endpoint["port"]]
            assert ports, f"no selected Service has a port named {endpoint['port']!r}"
            for service, port in ports:
                assert service["spec"].get("clusterIP") == "None", "scraped through a VIP: one random pod"
                assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels), service["metadata"]
                target = port.get("targetPort", port["port"])
                assert container_ports.get(target, target) == settings.metrics_port, (port, settings.metrics_port)


def assert_store_secret(docs: list[dict[str, Any]]) -> None:
    """The PostgreSQL URL and the object-storage credentials reach the front door from Secrets, and no overlay
    carries a Secret's content."""
    assert not [d for d in docs if d["kind"] == "Secret"], "an overlay must not apply Secrets"
    _, _, container = frontdoor(docs)
    (var,) = [v for v in container.get("env", []) if v["name"] == "FINESERVE_JOB_STORE"]
    assert set(var) == {"name", "valueFrom"}, f"{var}: a literal URL would commit its password"
    ref = var["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("fineserve-job-store", "url") and not ref.get("optional"), ref
    # Object-storage credentials: every key of their Secret, none written into the settings.
    assert {"secretRef": {"name": "fineserve-object-store"}} in container["envFrom"], container["envFrom"]
    assert not [k for d in docs if d["kind"] == "ConfigMap" for k in d["data"] if k.startswith("AWS_")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_pinned_by_digest_or_release_tag(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[overlay]
    assert_pinned(docs)
    used = {c["image"] for t in pod_templates(docs) for c in t["spec"]["containers"]}
    assert used <= set(image_pins().values()), used


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_front_doors_spread_over_nodes(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert_spread(rendered[overlay])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_come_from_the_generated_configmap(overlay: str,
                                                    rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert_settings_roll(rendered[overlay])


def test_platform_overlay_scrapes_with_a_servicemonitor_and_reads_credentials_from_secrets(
        rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["platform"]
    assert_scraped(docs, monkeypatch)
    assert_store_secret(docs)
    for overlay in set(OVERLAYS) - {"platform"}:
        assert not [d for d in rendered[overlay] if d["kind"] == "Secret"], overlay


def test_a_settings_change_renames_the_configmap_and_rolls_the_front_doors(kubectl: str, tmp_path: Path) -> None:
    k8s = Path(shutil.copytree(K8S, tmp_path / "k8s"))
    before = one(render(kubectl, "dev", k8s), "Deployment")["spec"]["template"]
    settings = k8s / "base" / "settings.env"
    settings.write_text(settings.read_text().replace("FINESERVE_GRACE_SECONDS=20", "FINESERVE_GRACE_SECONDS=25"))
    docs = render(kubectl, "dev", k8s)
    after = one(docs, "Deployment")["spec"]["template"]
    assert_settings_roll(docs)
    # A changed pod template is what makes the Deployment roll its pods.
    assert before != after
    (name_before,), (name_after,) = ([s["configMapRef"]["name"] for s in t["spec"]["containers"][0]["envFrom"]]
                                     for t in (before, after))
    assert name_before != name_after and one(docs, "ConfigMap")["data"]["FINESERVE_GRACE_SECONDS"] == "25"


def _wrong_affinity_label(docs: list[dict[str, Any]]) -> None:
    term = one(docs, "Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    term["labelSelector"] = {"matchLabels": {"app.kubernetes.io/name": "fineserve"}}


def _affinity_on_part_of(docs: list[dict[str, Any]]) -> None:
    term = one(docs, "Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    term["labelSelector"] = {"matchLabels": {"app.kubernetes.io/part-of": "fineserve"}}


def _moving_tag(docs: list[dict[str, Any]]) -> None:
    one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/fineserve:cpu"


def _unreferenced_configmap(docs: list[dict[str, Any]]) -> None:
    one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "fineserve-settings"}}]
    docs.append({"kind": "ConfigMap", "metadata": {"name": "fineserve-settings"}, "data": {}})


def _servicemonitor_port_the_service_lacks(docs: list[dict[str, Any]]) -> None:
    one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] = "http-metrics"


def _metrics_service_to_the_grpc_port(docs: list[dict[str, Any]]) -> None:
    one(docs, "Service", "fineserve-frontdoor-metrics")["spec"]["ports"][0]["targetPort"] = "grpc"


def _literal_store_url(docs: list[dict[str, Any]]) -> None:
    env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    (var,) = [v for v in env if v["name"] == "FINESERVE_JOB_STORE"]
    var.pop("valueFrom")
    var["value"] = "postgresql://fineserve:secret@db/fineserve"


@pytest.mark.parametrize(("check", "breaks"), [
    (assert_spread, _wrong_affinity_label), (assert_spread, _affinity_on_part_of), (assert_pinned, _moving_tag),
    (assert_settings_roll, _unreferenced_configmap), (assert_scraped, _servicemonitor_port_the_service_lacks),
    (assert_scraped, _metrics_service_to_the_grpc_port), (assert_store_secret, _literal_store_url)])
def test_a_broken_platform_object_fails_its_check(check: Any, breaks: Any, monkeypatch: pytest.MonkeyPatch,
                                                  rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = copy.deepcopy(rendered["platform"])
    args = (monkeypatch,) if check is assert_scraped else ()
    check(docs, *args)
    breaks(docs)
    with pytest.raises(AssertionError):
        check(docs, *args)
