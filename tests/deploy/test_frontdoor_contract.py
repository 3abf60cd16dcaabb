"""The manifests agree with what the front door actually reads: its FINESERVE_* variables (taken from
service/config.py's own parser, not from a second list), its port, its health service, its files and Ray.
"""

from __future__ import annotations

import shlex
import types
from pathlib import Path
from typing import Any

import pytest

import service.config
from deploy.manifests import K8S, OVERLAYS, image_pins, load_yaml_docs, one
from service.auth import parse_keys
from service.config import Settings, parse_settings

PREFIX = "FINESERVE_"


class _RecordingEnviron(dict[str, str]):
    """An environment that remembers which FINESERVE_* names were looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key.startswith(PREFIX):
            self.read.add(key)
        return super().get(key, default)


def parse_with_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[Settings, set[str]]:
    """Settings the front door builds from `env` alone (no flags), and the FINESERVE_* names it looked up."""
    environ = _RecordingEnviron(env)
    monkeypatch.setattr(service.config, "os", types.SimpleNamespace(environ=environ))
    return parse_settings([]), environ.read


def frontdoor(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(Deployment, its pod spec, the front-door container)."""
    deployment = one(docs, "Deployment", "fineserve-frontdoor")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return deployment, pod, container


def example_secrets() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in load_yaml_docs(K8S / "examples" / "secrets.example.yaml")}


def container_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment Kubernetes gives the container: envFrom ConfigMaps and Secrets, then env entries (a
    Secret's keys as the example Secret of that name holds them, the pod's namespace from the downward API)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            env.update(example_secrets()[source["secretRef"]["name"]]["stringData"])
        else:
            env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = example_secrets()[ref["name"]]["stringData"][ref["key"]]
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace", var
            env[var["name"]] = one(docs, "Deployment", "fineserve-frontdoor")["metadata"].get("namespace", "")
        else:
            env[var["name"]] = var["value"]
    return env


def mount_of(pod: dict[str, Any], container: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, volumeMount) of the container's mount that holds `path`."""
    for m in container.get("volumeMounts", []):
        if path == Path(m["mountPath"]) or Path(m["mountPath"]) in path.parents:
            (volume,) = [v for v in pod["volumes"] if v["name"] == m["name"]]
            return volume, m
    raise AssertionError(f"{path} is on no volume of container {container['name']}")


def probe_argv(probe: dict[str, Any]) -> list[str]:
    """The arguments an exec probe gives service.health_probe (its command is a bash line: bash -c LINE)."""
    command = probe["exec"]["command"]
    assert command[:2] == ["/bin/bash", "-c"] and len(command) == 3, command
    words = shlex.split(command[2].split(";")[0])
    start = words.index("service.health_probe")
    assert words[start - 1] == "-m" and words[start - 2] == "/opt/fineserve/bin/python", words
    return words[start + 1:]


def probe_ports(container: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """probe name -> (handler, port)."""
    out = {}
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert name in container, f"no {name}"
        ((handler, spec),) = [(k, v) for k, v in container[name].items() if k in ("grpc", "tcpSocket", "httpGet",
                                                                                   "exec")]
        if handler == "exec":
            argv = probe_argv(container[name])
            spec = {"port": int(argv[argv.index("--target") + 1].rpartition(":")[2])}
        out[name] = (handler, spec["port"])
    return out


def test_env_names_are_all_read_by_the_front_door(monkeypatch: pytest.MonkeyPatch,
                                                  rendered: dict[str, list[dict[str, Any]]]) -> None:
    _, known = parse_with_env(monkeypatch, {})
    assert {"FINESERVE_PORT", "FINESERVE_DATA_DIR", "FINESERVE_RAY_ADDRESS"} <= known, known
    for overlay, docs in rendered.items():
        _, _, container = frontdoor(docs)
        named = {k for k in container_env(docs, container) if k.startswith(PREFIX)}
        assert named, overlay
        assert named <= known, f"{overlay}: the front door reads no {sorted(named - known)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_probes_and_service_match_the_front_door(overlay: str, monkeypatch: pytest.MonkeyPatch,
                                                       rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[overlay]
    _, _, container = frontdoor(docs)
    settings, _ = parse_with_env(monkeypatch, container_env(docs, container))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": settings.port, "metrics": settings.metrics_port}, (ports, settings)
    probes = probe_ports(container)
    # The kubelet's gRPC probe speaks plaintext only: with TLS the image's health probe runs in the container.
    # Liveness is always that probe (exit 0 or 1: the process answers); test_platform.py runs them all.
    expected = "exec" if settings.tls_cert else "grpc"
    assert probes == {"startupProbe": (expected, settings.port), "readinessProbe": (expected, settings.port),
                      "livenessProbe": ("exec", settings.port)}, (probes, settings)
    for name in probes:
        # No service name: grpc.health.v1's overall status, SERVING while the coordinator and Ray answer.
        assert container[name].get(expected, {}).get("service", "") == ""
    service = one(docs, "Service", "fineserve")
    pod_labels = one(docs, "Deployment", "fineserve-frontdoor")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (svc_port,) = service["spec"]["ports"]
    assert ports[svc_port["targetPort"]] == settings.port
    policy = one(docs, "NetworkPolicy", "fineserve-frontdoor")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    open_ports = {p["port"] for rule in policy["spec"]["ingress"] if "from" not in rule for p in rule["ports"]}
    assert open_ports == {settings.port}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_front_door_pod_is_scraped_on_its_metrics_port(overlay: str, monkeypatch: pytest.MonkeyPatch,
                                                          rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Per pod (each counts its own calls): the annotations name the port the front door serves /metrics on,
    and only Prometheus may reach it."""
    docs = rendered[overlay]
    deployment, _, container = frontdoor(docs)
    settings, _ = parse_with_env(monkeypatch, container_env(docs, container))
    assert settings.metrics_port, "the front door serves no metrics"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == settings.metrics_port
    assert all(p["port"] != settings.metrics_port for p in one(docs, "Service", "fineserve")["spec"]["ports"])
    policy = one(docs, "NetworkPolicy", "fineserve-frontdoor")
    (rule,) = [r for r in policy["spec"]["ingress"] if any(p["port"] == settings.metrics_port
                                                           for p in r.get("ports", []))]
    assert [f["podSelector"]["matchLabels"] for f in rule["from"]] == [{"app.kubernetes.io/name": "prometheus"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_files_and_storage_match_the_front_door(overlay: str, monkeypatch: pytest.MonkeyPatch,
                                                rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[overlay]
    _, pod, container = frontdoor(docs)
    settings, _ = parse_with_env(monkeypatch, container_env(docs, container))
    # The data dir is the RWX claim, mounted at the same path in every Ray container (jobs use its paths).
    volume, _ = mount_of(pod, container, settings.data_dir)
    claim = volume["persistentVolumeClaim"]["claimName"]
    pvc = one(docs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    cluster = one(docs, "RayCluster")
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        ray_pod = group["template"]["spec"]
        for ray_container in ray_pod["containers"]:
            ray_volume, _ = mount_of(ray_pod, ray_container, settings.data_dir)
            assert ray_volume["persistentVolumeClaim"]["claimName"] == claim, group.get("groupName", "head")
    assert settings.allowed_roots and all(settings.data_dir in r.parents for r in settings.allowed_roots)
    # API keys: a file of the fineserve-api-keys Secret, whose example content the front door accepts.
    assert settings.api_keys_file is not None, "the manifests must not run the front door in open mode"
    volume, mount = mount_of(pod, container, settings.api_keys_file)
    assert volume["secret"]["secretName"] == "fineserve-api-keys" and mount.get("readOnly")
    examples = example_secrets()
    keys_text = examples["fineserve-api-keys"]["stringData"][settings.api_keys_file.name]
    assert parse_keys(keys_text)
    if settings.tls_cert is not None:
        for path, key in ((settings.tls_cert, "tls.crt"), (settings.tls_key, "tls.key")):
            assert path is not None and path.name == key
            volume, _ = mount_of(pod, container, path)
            assert volume["secret"]["secretName"] == "fineserve-tls"
            assert examples["fineserve-tls"]["type"] == "kubernetes.io/tls"
    # A read-only root with the scratch the front door writes (Ray's session dir under /tmp, HOME).
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = container_env(docs, container)
    for path in (Path("/tmp"), Path(env["HOME"])):
        assert "emptyDir" in mount_of(pod, container, path)[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_front_door_joins_the_raycluster(overlay: str, monkeypatch: pytest.MonkeyPatch,
                                             rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[overlay]
    _, pod, container = frontdoor(docs)
    env = container_env(docs, container)
    settings, _ = parse_with_env(monkeypatch, env)
    # Ray Client (ray://) cannot carry the streaming generator tasks and Serve handles service/ray_serving.py
    # uses, so the entrypoint makes the pod a Ray node and the front door connects to it with "auto".
    assert settings.ray_address == "auto"
    entrypoint = (Path(__file__).resolve().parents[2] / "deploy" / "docker" / "fineserve-frontdoor").read_text()
    assert "RAY_HEAD_ADDRESS" in entrypoint and "python -m service" in entrypoint
    cluster = one(docs, "RayCluster")
    (head,) = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    gcs = {p["name"]: p["containerPort"] for p in head["ports"]}["gcs-server"]
    # KubeRay names the head's Service <RayCluster name>-head-svc.
    assert env["RAY_HEAD_ADDRESS"] == f"{cluster['metadata']['name']}-head-svc:{gcs}"
    assert pod["terminationGracePeriodSeconds"] > settings.grace_seconds
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_front_door_replicas_scale_on_cpu_roll_and_a_budget_keeps_one_serving(
        overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    """>= 2 stateless replicas (jobs belong to the cluster's coordinator: tests/e2e/test_cluster_front_doors.py),
    more as their CPU fills (one Python process each: README, Serving at scale); updates and drains never take
    the last one away, a drain can still proceed, and clients reconnect so that new replicas get their share."""
    docs = rendered[overlay]
    deployment, _, container = frontdoor(docs)
    assert "replicas" not in deployment["spec"], "the autoscaler owns the count; applying must not reset it"
    hpa = one(docs, "HorizontalPodAutoscaler", "fineserve-frontdoor")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    replicas = hpa["spec"]["minReplicas"]
    assert 2 <= replicas < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    assert container["resources"]["requests"]["cpu"], "utilization is measured against the CPU request"
    assert float(container_env(docs, container)["FINESERVE_MAX_CONNECTION_AGE_S"]) > 0
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = one(docs, "PodDisruptionBudget", "fineserve-frontdoor")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < replicas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_workers_only_where_the_overlay_says(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    cluster = one(rendered[overlay], "RayCluster")
    gpu_groups = {}
    for group in cluster["spec"]["workerGroupSpecs"]:
        (ray_container,) = group["template"]["spec"]["containers"]
        gpus = ray_container["resources"].get("limits", {}).get("nvidia.com/gpu", 0)
        if gpus:
            gpu_groups[group["groupName"]] = ray_container["image"]
    if overlay in ("gpu", "platform"):
        assert gpu_groups and set(gpu_groups.values()) == {image_pins()["fineserve-cuda"]}, gpu_groups
    else:
        assert not gpu_groups, gpu_groups


def test_recording_environ_sees_what_parse_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, read = parse_with_env(monkeypatch, {"FINESERVE_PORT": "6000", "FINESERVE_BOGUS": "1"})
    assert settings.port == 6000 and "FINESERVE_PORT" in read and "FINESERVE_BOGUS" not in read
