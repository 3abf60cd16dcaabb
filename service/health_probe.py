"""A health check for exec probes (Kubernetes liveness/readiness) that speaks TLS and mutual TLS: exit 0 only when
the front door answers SERVING. A plain-TCP probe cannot tell a front door that lost its cluster from a healthy one,
and gRPC's own probe needs the client certificate once --tls-client-ca is on.

    python -m service.health_probe [--target HOST:PORT] [--tls --ca CA.pem [--cert C.pem --key K.pem]
                                    [--server-name NAME]] [--service NAME] [--timeout S] [--alive]

Exit codes: 0 SERVING, 1 any other status, 2 no answer (unreachable, TLS refused, timeout), 3 bad usage/files.
With --alive (a liveness probe), any answer exits 0: a front door whose cluster is down answers NOT_SERVING, and
restarting it would not bring the cluster back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING, NOT_SERVING, NO_ANSWER, USAGE = 0, 1, 2, 3


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m service.health_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="127.0.0.1:50051", help="front door address (default 127.0.0.1:50051)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (the server runs with --tls-cert)")
    p.add_argument("--ca", type=Path, help="CA bundle (PEM) that signed the server certificate (default: system's)")
    p.add_argument("--cert", type=Path, help="client certificate (PEM), for mutual TLS (--tls-client-ca)")
    p.add_argument("--key", type=Path, help="client private key (PEM), with --cert")
    p.add_argument("--server-name", default="", help="name the server certificate is checked against, when "
                   "--target (e.g. 127.0.0.1 inside the pod) is not among its names")
    p.add_argument("--service", default="", help="service name to ask about ('' = the whole server)")
    p.add_argument("--alive", action="store_true", help="exit 0 on any answer, NOT_SERVING included (liveness)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    a = p.parse_args(argv)
    if (a.cert is None) != (a.key is None):
        p.error("--cert and --key go together")
    if (a.ca or a.cert or a.server_name) and not a.tls:
        p.error("--ca, --cert, --key and --server-name need --tls")
    if not a.timeout > 0:
        p.error("--timeout must be > 0")
    return a


def _channel(a: argparse.Namespace) -> grpc.Channel:
    if not a.tls:
        return grpc.insecure_channel(a.target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=a.ca.read_bytes() if a.ca else None,
        private_key=a.key.read_bytes() if a.key else None,
        certificate_chain=a.cert.read_bytes() if a.cert else None)
    options = [("grpc.ssl_target_name_override", a.server_name)] if a.server_name else []
    return grpc.secure_channel(a.target, credentials, options=options)


def probe(argv: list[str] | None = None) -> int:
    """The exit code for one health check (printed as one line, for the probe's event message)."""
    a = _parse(argv)
    try:
        channel = _channel(a)
    except OSError as e:
        print(f"cannot read a TLS file: {e}", file=sys.stderr)
        return USAGE
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=a.service), timeout=a.timeout)
        except grpc.RpcError as e:
            print(f"{a.target}: no answer: {e.code().name}: {e.details()}", file=sys.stderr)
            return NO_ANSWER
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{a.target}: {name}")
    return SERVING if a.alive or answer.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING


if __name__ == "__main__":
    sys.exit(probe())
