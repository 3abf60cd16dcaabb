"""Load: a few thousand mixed calls at concurrency 32 over mutual TLS with API keys, zero errors; the front
door's resident memory does not keep growing from one round to the next. Loopback only, bounded in time."""

from __future__ import annotations

import asyncio
import os
import random
import time

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fineserve.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from security.conftest import SecureServer, Trained
from security.helpers import png

CONCURRENCY = 32
CALLS_PER_ROUND = int(os.environ.get("FINESERVE_LOAD_CALLS", "1500"))
MAX_GROWTH_MB = 30.0
TIME_BUDGET_S = 150.0


async def _round(secure: SecureServer, alice_model: Trained, calls: int, seed: int) -> tuple[int, list[str], float]:
    creds = secure.pki.channel_credentials()
    md = (("authorization", f"Bearer {secure.keys['alice']}"),)
    images = [common_pb2.Image(data=png(16, 16, (i * 40 % 256, 30, 200)), name=str(i)) for i in range(4)]
    pets = common_pb2.ModelRef(name="pets", version=1)
    errors: list[str] = []
    done = 0
    async with grpc.aio.secure_channel(secure.target, creds) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        models = models_pb2_grpc.ModelsStub(ch)
        training = training_pb2_grpc.TrainingStub(ch)
        datasets = datasets_pb2_grpc.DatasetsStub(ch)
        inference = inference_pb2_grpc.InferenceStub(ch)
        mix = [
            lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=30),
            lambda: models.GetModel(models_pb2.GetModelRequest(ref=pets), metadata=md, timeout=30),
            lambda: models.ListModels(models_pb2.ListModelsRequest(), metadata=md, timeout=30),
            lambda: training.ListJobs(training_pb2.ListJobsRequest(page=common_pb2.PageRequest(page_size=5)),
                                      metadata=md, timeout=30),
            lambda: training.GetJob(training_pb2.GetJobRequest(id=alice_model.job.id), metadata=md, timeout=30),
            lambda: datasets.GetDataset(datasets_pb2.GetDatasetRequest(id=alice_model.dataset.id), metadata=md,
                                        timeout=30),
            lambda: inference.Classify(inference_pb2.ClassifyRequest(model=pets, images=images[:1], top_k=2),
                                       metadata=md, timeout=60),
            lambda: inference.Classify(inference_pb2.ClassifyRequest(model=pets, images=images, top_k=1),
                                       metadata=md, timeout=60),
        ]
        rnd = random.Random(seed)
        plan = [rnd.randrange(len(mix)) for _ in range(calls)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for p in plan:
            queue.put_nowait(p)

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    await mix[i]()
                except grpc.aio.AioRpcError as e:
                    errors.append(f"call {i}: {e.code().name} {e.details()}")
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done, errors, time.monotonic() - started


def test_mixed_load_no_errors_bounded_memory(secure: SecureServer, alice_model: Trained) -> None:
    front_door = psutil.Process(secure.proc.proc.pid)
    started = time.monotonic()
    rss = [front_door.memory_info().rss / 2**20]
    results = []
    for seed in (0, 1, 2):  # round 0 warms up caches and pools; rounds 1 and 2 are compared
        done, errors, seconds = asyncio.run(_round(secure, alice_model, CALLS_PER_ROUND, seed))
        assert not errors, f"{len(errors)} errors, first: {errors[:3]}"
        assert done == CALLS_PER_ROUND
        rss.append(front_door.memory_info().rss / 2**20)
        results.append((done, seconds))
    total = time.monotonic() - started
    for i, (done, seconds) in enumerate(results):
        print(f"\nload round {i}: {done} calls at concurrency {CONCURRENCY} in {seconds:.1f}s "
              f"({done / seconds:.0f} calls/s), front door RSS {rss[i]:.0f} -> {rss[i + 1]:.0f} MiB")
    growth_1, growth_2 = rss[2] - rss[1], rss[3] - rss[2]
    print(f"front door RSS growth: round 1 {growth_1:+.1f} MiB, round 2 {growth_2:+.1f} MiB; total {total:.0f}s")
    assert growth_2 < MAX_GROWTH_MB, rss
    assert total < TIME_BUDGET_S
    assert secure.proc.healthy()
