"""The front door's exec probes, run as the kubelet would: each overlay's rendered command line, through bash, in
an environment laid out like the pod's (its Secrets' files at their mount paths, POD_NAMESPACE), against a real
grpc.health.v1 server with the overlay's TLS (server certificate for fineserve.<namespace>.svc) or mutual TLS.
Readiness passes only on SERVING; liveness on any answer, and fails when nothing answers."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deploy.manifests import ROOT, one
from deploy.test_frontdoor_contract import container_env, frontdoor, parse_with_env

Key = ec.EllipticCurvePrivateKey


def _cert(subject: str, key: Key, issuer: tuple[str, Key] | None, dns: str | None = None) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def secrets_for(namespace: str, server_name: str | None = None) -> dict[str, dict[str, bytes]]:
    """Secret name -> files, as an operator would create them (deploy/k8s/examples/secrets.example.yaml)."""
    ca_key, client_ca_key, server_key, probe_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    return {
        "fineserve-tls": {"tls.crt": _cert("server", server_key, ("ca", ca_key),
                                           server_name or f"fineserve.{namespace}.svc"),
                          "tls.key": _pem(server_key), "ca.crt": _cert("ca", ca_key, None)},
        "fineserve-client-ca": {"ca.crt": _cert("client-ca", client_ca_key, None)},
        "fineserve-probe-tls": {"tls.crt": _cert("probe", probe_key, ("client-ca", client_ca_key)),
                                "tls.key": _pem(probe_key)},
        "fineserve-api-keys": {"api-keys.json": b"{}"},
    }


class Pod:
    """The front door's container of one overlay, its Secret volumes laid out under a folder."""

    def __init__(self, docs: list[dict[str, Any]], folder: Path, monkeypatch: pytest.MonkeyPatch,
                 server_name: str | None = None) -> None:
        _, pod, self.container = frontdoor(docs)
        self.settings, _ = parse_with_env(monkeypatch, container_env(docs, self.container))
        self.namespace = one(docs, "Deployment")["metadata"]["namespace"]
        secrets = secrets_for(self.namespace, server_name)
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.paths: dict[str, str] = {}
        for mount in self.container["volumeMounts"]:
            secret = volumes[mount["name"]].get("secret")
            if secret:
                where = folder / secret["secretName"]
                where.mkdir(parents=True)
                for name, data in secrets[secret["secretName"]].items():
                    (where / name).write_bytes(data)
                self.paths[mount["mountPath"]] = str(where)

    def local(self, path: Path | None) -> bytes | None:
        """The bytes of a file the front door's settings name, read from where its Secret was laid out."""
        if path is None:
            return None
        for mount, where in self.paths.items():
            if str(path).startswith(mount + "/"):
                return Path(where + str(path)[len(mount):]).read_bytes()
        raise AssertionError(f"{path} is on no Secret volume")

    def run(self, probe: str, port: int, container: dict[str, Any] | None = None) -> int:
        """The exit code of one probe's command, as bash runs it in the container."""
        command = list((container or self.container)[probe]["exec"]["command"])
        line = command[2].replace("/opt/fineserve/bin/python", sys.executable)
        line = line.replace(f"127.0.0.1:{self.settings.port}", f"127.0.0.1:{port}")
        for mount, where in self.paths.items():
            line = line.replace(mount + "/", where + "/")
        env = {"PATH": os.environ["PATH"], "POD_NAMESPACE": self.namespace}
        return subprocess.run([*command[:2], line], env=env, cwd=ROOT, capture_output=True, timeout=60).returncode


class HealthServer:
    """A grpc.health.v1 server on a free local port, with the front door's own TLS settings."""

    def __init__(self, pod: Pod) -> None:
        self.health = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        s = pod.settings
        if s.tls_cert:
            credentials = grpc.ssl_server_credentials([(pod.local(s.tls_key), pod.local(s.tls_cert))],
                                                      root_certificates=pod.local(s.tls_client_ca),
                                                      require_client_auth=s.tls_client_ca is not None)
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def set(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set("", status)

    def stop(self) -> None:
        self.server.stop(None).wait()


@pytest.mark.parametrize("overlay", ["dev", "gpu", "platform"])
def test_probes_pass_on_serving_and_liveness_only_needs_an_answer(
        overlay: str, rendered: dict[str, list[dict[str, Any]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod(rendered[overlay], tmp_path, monkeypatch)
    assert pod.settings.tls_cert is not None or overlay == "dev"
    assert (pod.settings.tls_client_ca is not None) == (overlay == "platform")
    # Startup and readiness run the same check (startup only waits longer).
    for handler in ("exec", "grpc"):
        assert pod.container["startupProbe"].get(handler) == pod.container["readinessProbe"].get(handler)
    server = HealthServer(pod)
    try:
        server.set(True)
        if "exec" in pod.container["readinessProbe"]:
            assert pod.run("readinessProbe", server.port) == 0
        assert pod.run("livenessProbe", server.port) == 0
        if overlay == "gpu":
            server.set(False)
            assert pod.run("readinessProbe", server.port) != 0, "NOT_SERVING must take the pod out of the Service"
            assert pod.run("livenessProbe", server.port) == 0, "NOT_SERVING must not restart the front door"
        if overlay == "platform":
            # The TLS-only probe (no client certificate) is refused by the mutual-TLS server.
            _, _, tls_only = frontdoor(rendered["gpu"])
            assert pod.run("readinessProbe", server.port, tls_only) != 0
    finally:
        server.stop()
    if overlay == "dev":
        assert pod.run("livenessProbe", server.port) != 0, "nothing answers: the front door must be restarted"


def test_a_certificate_for_another_name_fails_the_tls_probe(rendered: dict[str, list[dict[str, Any]]],
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod(rendered["gpu"], tmp_path, monkeypatch, server_name="fineserve.elsewhere.svc")
    server = HealthServer(pod)
    try:
        server.set(True)
        assert pod.run("readinessProbe", server.port) != 0
    finally:
        server.stop()
