"""The gRPC front door: wires store, registry, Ray and servicers; health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

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
from service.config import Settings
from service.jobs import JobManager
from service.ray_backend import RayBackend
from service.registry import Registry
from service.store import Store

log = logging.getLogger(__name__)

SERVICES = [d.services_by_name[n].full_name for d, n in (
    (datasets_pb2.DESCRIPTOR, "Datasets"), (training_pb2.DESCRIPTOR, "Training"),
    (models_pb2.DESCRIPTOR, "Models"), (inference_pb2.DESCRIPTOR, "Inference"))]


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; then finish in-flight calls and re-queue running jobs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.data_dir / "fineserve.db")
    registry = Registry(store, settings.data_dir)
    backend = RayBackend(settings)
    await asyncio.to_thread(backend.start)
    jobs = JobManager(store, backend, registry)

    opts = [("grpc.max_receive_message_length", settings.limits.max_message_bytes),
            ("grpc.max_send_message_length", settings.limits.max_message_bytes)]
    server = grpc.aio.server(options=opts)
    training = TrainingServicer(store, jobs, registry, settings.allowed_roots)
    datasets_pb2_grpc.add_DatasetsServicer_to_server(DatasetsServicer(store, settings), server)
    training_pb2_grpc.add_TrainingServicer_to_server(training, server)
    models_pb2_grpc.add_ModelsServicer_to_server(ModelsServicer(store, registry), server)
    inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(store, backend.handle, settings.limits), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    await server.start()
    for name in ["", *SERVICES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    resumed = jobs.resume_unfinished(training.spec_for)
    # Tests and scripts read this line to learn the port when --port 0 picked one.
    print(f"fineserve listening on {settings.host}:{port} (data dir {settings.data_dir}; "
          f"{resumed} job(s) re-queued)", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: finishing in-flight calls (grace %.0fs), re-queueing running jobs",
             settings.grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    jobs.close_watchers()
    await server.stop(settings.grace_seconds)
    await jobs.shutdown(settings.grace_seconds)
    await asyncio.to_thread(backend.stop)
    store.close()
    print("fineserve stopped", flush=True)
