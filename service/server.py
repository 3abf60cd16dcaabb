"""The gRPC front door: wires store, registry, Ray and servicers; health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from control.coordinator import ControlSettings, RemoteJobs, RemoteStore
from control.coordinator import connect as connect_coordinator
from control.registry import Registry
from fineserve.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from service.api.datasets import DatasetsServicer
from service.api.inference import InferenceServicer
from service.api.models import ModelsServicer
from service.api.training import TrainingServicer
from service.audit import configure as configure_audit
from service.auth import KeysFileError, KeyStore
from service.config import Settings
from service.health_watch import HealthWatch, coordinator_probe, ray_probe
from service.interceptors import AuthInterceptor
from service.metrics import ServingCollector, start_metrics
from service.ray_serving import RayBackend

log = logging.getLogger(__name__)

SERVICES = [d.services_by_name[n].full_name for d, n in (
    (datasets_pb2.DESCRIPTOR, "Datasets"), (training_pb2.DESCRIPTOR, "Training"),
    (models_pb2.DESCRIPTOR, "Models"), (inference_pb2.DESCRIPTOR, "Inference"))]


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments: message sizes, and the connection age after which clients are sent
    GOAWAY (no grace limit is set, so calls in flight are never cut off)."""
    opts = [("grpc.max_receive_message_length", settings.limits.max_message_bytes),
            ("grpc.max_send_message_length", settings.limits.max_message_bytes),
            # gRPC's default SO_REUSEPORT would let a second server bind a port another one listens on, and split
            # the connections between them: a port in use must be refused.
            ("grpc.so_reuseport", 0)]
    if settings.max_connection_age_s > 0:
        opts.append(("grpc.max_connection_age_ms", round(settings.max_connection_age_s * 1000)))
    return opts


def control_settings(settings: Settings) -> ControlSettings:
    """What the coordinator takes from the server's settings."""
    return ControlSettings(
        data_dir=settings.data_dir, ray_address=settings.ray_address, job_cpus=settings.job_cpus,
        max_running_jobs=settings.max_running_jobs, max_running_jobs_per_tenant=settings.max_running_jobs_per_tenant,
        max_active_jobs_per_tenant=settings.limits.max_concurrent_jobs_per_tenant,
        job_lease_s=settings.job_lease_seconds, max_image_pixels=settings.limits.max_image_pixels,
        allowed_roots=settings.allowed_roots, job_store=settings.job_store)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; then finish in-flight calls and re-queue running jobs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:  # a bad keys file stops the start here, before Ray
        keys = KeyStore(settings.api_keys_file)
    except KeysFileError as e:
        raise SystemExit(f"fineserve: {e}") from e
    credentials = server_credentials(settings)
    configure_audit(settings.audit_log)
    # The ports before Ray (which takes a minute or more to start): one in use stops the start at once.
    server = grpc.aio.server(options=server_options(settings), interceptors=[AuthInterceptor(keys)])
    port = listen(server, settings.host, settings.port, credentials)
    if settings.metrics_port:
        check_free(settings.host, settings.metrics_port)
    backend = RayBackend(settings)
    await asyncio.to_thread(backend.start)
    coordinator, resumed = await asyncio.to_thread(connect_coordinator, control_settings(settings))
    store = RemoteStore(coordinator)
    following = asyncio.create_task(store.follow_model_changes())
    registry = Registry(store, settings.data_dir)  # type: ignore[arg-type]
    jobs = RemoteJobs(coordinator)

    training = TrainingServicer(store, jobs, registry, settings.allowed_roots)
    datasets_pb2_grpc.add_DatasetsServicer_to_server(DatasetsServicer(store, settings), server)
    training_pb2_grpc.add_TrainingServicer_to_server(training, server)
    models_pb2_grpc.add_ModelsServicer_to_server(ModelsServicer(store, registry, backend.loaded_replicas), server)
    inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(store, backend.handle, settings.limits, registry.serving_id, settings.serving), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    await server.start()
    if settings.metrics_port is not None:
        metrics_port = start_metrics(settings.metrics_port, settings.host,
                                     ServingCollector(backend.serving_stats, store.unfinished_jobs))
        # Tests and scripts read this line to learn the metrics port when 0 picked one.
        print(f"fineserve metrics on {settings.host}:{metrics_port}/metrics", flush=True)
    _log_security(settings, keys)
    watch = HealthWatch(health_servicer, ["", *SERVICES],
                        {"coordinator": coordinator_probe(coordinator), "ray": ray_probe()})
    await watch.update()  # SERVING before the listening line when the coordinator and Ray answer
    watching = asyncio.create_task(watch.run())
    # Tests and scripts read this line to learn the port when --port 0 picked one.
    print(f"fineserve listening on {settings.host}:{port} (data dir {settings.data_dir}; "
          f"{resumed} job(s) re-queued)", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    local = not settings.ray_address
    log.info("stopping: finishing in-flight calls (grace %.0fs)%s", settings.grace_seconds,
             ", re-queueing running jobs" if local else "; jobs keep running in the cluster's coordinator")
    watching.cancel()
    await health_servicer.enter_graceful_shutdown()
    jobs.close_watchers()
    await server.stop(settings.grace_seconds)
    following.cancel()
    if local:  # the local Ray, coordinator and jobs go down with this process: leave the jobs re-queued
        await jobs.shutdown(settings.grace_seconds)
    await asyncio.to_thread(backend.stop)
    print("fineserve stopped", flush=True)


def listen(server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None) -> int:
    """Bind the gRPC port (calls are served once the server starts); the port bound. SystemExit naming the
    address when it cannot be bound."""
    address = f"{host}:{port}"
    try:
        return (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
    except RuntimeError as e:  # gRPC says only "Failed to bind": find out why with a socket of our own
        check_free(host, port)
        raise SystemExit(f"fineserve: cannot listen on {address}: {e}") from e


def check_free(host: str, port: int) -> None:
    """SystemExit "address host:port already in use" (or the reason the address cannot be bound) unless a
    socket can bind it now. A check, not a reservation: used for the metrics port, bound only after Ray."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise SystemExit(f"fineserve: cannot listen on {host}:{port}: {e}") from e
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC and the metrics server do
            try:
                s.bind(sockaddr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise SystemExit(f"fineserve: address {host}:{port} already in use (another process listens "
                                     "there): stop it or choose another port") from e
                raise SystemExit(f"fineserve: cannot listen on {host}:{port}: {e.strerror or e}") from e


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from --tls-cert/--tls-key; with --tls-client-ca, client certificates are required (mutual TLS)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        chain = settings.tls_cert.read_bytes()
        key = settings.tls_key.read_bytes()
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca is not None else None
    except OSError as e:
        raise SystemExit(f"fineserve: cannot read a TLS file: {e}") from e
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def _log_security(settings: Settings, keys: KeyStore) -> None:
    if settings.tls_cert is None:
        log.warning("TLS is off: traffic, API keys included, is plaintext (set --tls-cert/--tls-key)")
    else:
        log.info("TLS on (certificate %s)%s", settings.tls_cert,
                 f"; mutual TLS: client certificates must chain to {settings.tls_client_ca}"
                 if settings.tls_client_ca else "")
    if keys.open:
        log.warning("NO API KEYS CONFIGURED: the service is OPEN, every caller acts as tenant 'default' "
                    "(set --api-keys-file / FINESERVE_API_KEYS_FILE; python -m service.keys add)")
    elif not keys.tenants:
        log.warning("the API keys file %s holds no keys: every call will be refused", keys.path)
    else:
        log.info("API keys from %s: %d tenant(s) (%s)", keys.path, len(keys.tenants), ", ".join(keys.tenants))
