"""Classify through gRPC against raw batched inference of the same ResNet-18 in one process (the ceiling).

A fresh data dir gets two stored ResNet-18 classifiers at 224 px (random weights: speed does not depend on
them), published through the registry as a finished job would publish them; then a real front door starts on
it (local Ray, the Serve deployment as configured by the flags after "--"). For each concurrency, that many
asyncio callers send one-image Classify calls; the table gives images/s and p50/p99 latency, beside the
ceiling: the same weights, decode + the model's transform + one batched forward pass (batch = concurrency,
at most --max-batch), in this process, readied as a replica readies it (--device, --precision, channels-last on
CUDA). Then the time to first prediction of the second model, never called
before (load from the store, warm-up, predict), beside the warm single-image latency. The one-image latency
goal is checked apart: blocks of 32 one-image calls through fineserve alternate with blocks of 32 raw ones.

The real ceilings beside it, at the same batch: the forward pass alone (inputs decoded beforehand), and
decode_jpeg on the model's device + the batched resize + forward (what a CUDA replica runs). The last levels
send --images-per-call images per call (32 at concurrency 8).

Where the time goes: each level also gives the CPU milliseconds per image of this process's callers, of the front
door(s) and of the serving replicas. A process near 1000 ms of CPU per second of the level is bound by its one
Python interpreter. --front-doors N starts a Ray head and N front doors on it (the Kubernetes shape: callers are
spread over the doors as a Service spreads them), to show whether one front door is what bounds a GPU.

    OMP_NUM_THREADS=1 python benchmarks/serve_throughput.py
    OMP_NUM_THREADS=1 python benchmarks/serve_throughput.py --requests 64 --concurrency 1 8 32 --precision bf16
    python benchmarks/serve_throughput.py --precision bf16 -- --serve-replica-cpus 4 --serve-replica-gpus 1  # a GPU
    python benchmarks/serve_throughput.py --precision bf16 --front-doors 2 -- --serve-replica-gpus 0.25 \
        --serve-min-replicas 4 --serve-max-replicas 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psutil
import torch
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from control.registry import Registry
from control.store import Store
from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc, training_pb2
from fineserve_common.card import FORMAT_VERSION
from harness.launcher import RayHead, ServerProcess
from worker.engine.model_card import save_model
from worker.engine.served_models import prepare_for_serving
from worker.engine.vision.classifier import ImageClassifier
from worker.engine.vision.resnet import ResNetClassifier
from worker.engine.vision.transforms import IMAGENET_MEAN, IMAGENET_STD
from worker.serving_stats import REPORT_S

SIZE = 224
REPLICA_TITLE = "ServeReplica:fineserve:ModelServer"  # how Ray names a serving replica's process
CLASSES = [f"class{i}" for i in range(10)]


def _images(n: int) -> list[bytes]:
    """n distinct 320x240 JPEGs (smooth random fields, so they compress like photos)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        small = torch.rand(3, 12, 16, generator=gen)
        pixels = torch.nn.functional.interpolate(small[None], size=(240, 320), mode="bilinear")[0]
        buf = io.BytesIO()
        Image.fromarray((pixels.permute(1, 2, 0) * 255).byte().numpy()).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _card() -> dict:
    return {"format_version": FORMAT_VERSION, "task": "image_classification", "arch": "resnet18",
            "classes": CLASSES, "n_classes": len(CLASSES), "image_size": SIZE,
            "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}


async def _publish(data_dir: Path, names: list[str]) -> None:
    """Store the models as a finished fine-tune job does (staged files, then Registry.publish)."""
    store = Store(data_dir / "fineserve.db")
    registry = Registry(store, data_dir)
    for name in names:
        job = training_pb2.Job(id=f"bench-{name}",
                               request=training_pb2.CreateFineTuneJobRequest(model_name=name))
        save_model(registry.staging_dir(job.id), ResNetClassifier("resnet18", len(CLASSES)).state_dict(), _card())
        await registry.publish(job, _card())
    store.close()


def _raw(model_dir: Path, device: str, precision: str) -> Callable[[list[bytes]], list]:
    """Decode + the model's transform + one forward pass + top-2 of a list of images, in this process, with the
    engine readied as a replica readies it (device, precision, channels-last, warm-up: on CUDA, JPEGs decoded
    on the GPU)."""
    served = prepare_for_serving(ImageClassifier.load(model_dir, device=device), precision)
    return lambda chunk: served.classify(chunk, top_k=2)


def _other_ceilings(model_dir: Path, device: str, precision: str,
                    images: list[bytes]) -> tuple[Callable[[list[bytes]], object], Callable[[list[bytes]], object]]:
    """The real ceilings: (forward pass alone on a batch decoded beforehand, decode_jpeg on the model's device
    + the batched resize + forward), as runs for _ceiling."""
    served = prepare_for_serving(ImageClassifier.load(model_dir, device=device), precision)
    served.decode_device = served.device
    ready = {i: served.preprocess([data]) for i, data in enumerate(images)}
    index = {data: i for i, data in enumerate(images)}

    def forward_only(chunk: list[bytes]) -> object:
        return served.predict_tensor(torch.cat([ready[index[d]] for d in chunk]))

    return forward_only, lambda chunk: served.classify(chunk, top_k=2)


def _ceiling(run: Callable[[list[bytes]], list], images: list[bytes], batch: int, rounds: int) -> float:
    """Images/s of raw batched inference (run, see _raw) of `batch` images, the median of `rounds` batches."""
    run(images[:batch])
    rates = []
    for r in range(rounds):
        chunk = [images[(r * batch + i) % len(images)] for i in range(batch)]
        start = time.perf_counter()
        run(chunk)
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def _request(name: str, *images: bytes) -> inference_pb2.ClassifyRequest:
    return inference_pb2.ClassifyRequest(model=common_pb2.ModelRef(name=name), top_k=2,
                                         images=[common_pb2.Image(data=image) for image in images])


async def _through_grpc(targets: list[str], name: str, images: list[bytes], concurrency: int, requests: int,
                        warm_up: bool = True, per_call: int = 1) -> tuple[float, list[float]]:
    """(images/s, per-call latencies) of `requests` calls of per_call images from `concurrency` callers, spread
    over the front doors at `targets`, after one untimed call when warm_up."""
    async with contextlib.AsyncExitStack() as stack:
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(t)) for t in targets]
        stubs = [inference_pb2_grpc.InferenceStub(channel) for channel in channels]
        for channel in channels:
            await channel.channel_ready()
        if warm_up:
            await stubs[0].Classify(_request(name, images[0]), timeout=300)
        latencies: list[float] = []
        todo = iter(range(requests))

        async def caller(stub: inference_pb2_grpc.InferenceStub) -> None:
            for i in todo:
                start = time.perf_counter()
                chunk = [images[(i * per_call + j) % len(images)] for j in range(per_call)]
                await stub.Classify(_request(name, *chunk), timeout=300)
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(caller(stubs[c % len(stubs)]) for c in range(concurrency)))
        return requests * per_call / (time.perf_counter() - start), latencies


def _replica_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if REPLICA_TITLE in " ".join(p.info["cmdline"] or [])]


def _cpu_seconds(processes: list[psutil.Process]) -> list[float]:
    """User + system CPU seconds so far of each process (0 for one that has gone)."""
    seconds = []
    for p in processes:
        try:
            seconds.append(sum(p.cpu_times()[:2]))
        except psutil.NoSuchProcess:
            seconds.append(0.0)
    return seconds


@contextlib.contextmanager
def _front_doors(data_dir: Path, n: int, server_args: list[str]) -> Iterator[list[ServerProcess]]:
    """One embedded front door (its own local Ray), or n front doors on a Ray head of their own."""
    args = ["--metrics-port", "0", *server_args]
    with contextlib.ExitStack() as stack:
        if n > 1:
            args = ["--ray-address", stack.enter_context(RayHead(data_dir.parent / "ray-head.log")), *args]
        doors = [ServerProcess(data_dir, *args) for _ in range(n)]
        for i, door in enumerate(doors):  # each its own log: a door's start reads its own "listening" line
            door.log_path = data_dir.parent / f"front-door-{i}.log"
        started = time.monotonic()
        try:
            # Together: each waits for the serving app's replicas (on a GPU, their warm-up at every batch size).
            with ThreadPoolExecutor(n) as pool:
                for door in pool.map(lambda door: door.start(timeout=600), doors):
                    print(f"front door at {door.target} listening after {time.monotonic() - started:.0f} s",
                          flush=True)
            yield doors
        finally:
            for door in doors:
                if door.proc is not None:
                    door.stop()


async def _one_image_blocks(target: str, name: str, run: Callable[[list[bytes]], list], images: list[bytes],
                            blocks: int, per_block: int) -> tuple[list[float], list[float]]:
    """(fineserve, raw) seconds of one-image calls in alternating blocks: per_block Classify calls through gRPC
    back to back (as a concurrency-1 caller sends them), then per_block raw inferences (see _raw) in this
    process. Alternating keeps both sides' samples from the same minutes of a machine whose speed drifts."""
    run(images[:1])
    served: list[float] = []
    raw: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        await stub.Classify(_request(name, images[0]), timeout=300)
        for block in range(blocks):
            chunk = [images[(block * per_block + i) % len(images)] for i in range(per_block)]
            for image in chunk:
                start = time.perf_counter()
                await stub.Classify(_request(name, image), timeout=300)
                served.append(time.perf_counter() - start)
            for image in chunk:
                start = time.perf_counter()
                run([image])
                raw.append(time.perf_counter() - start)
    return served, raw


def _passes(metrics_url: str) -> tuple[float, float]:
    """(forward passes, images) the replicas have run for Classify so far, from the front door's metrics."""
    with urllib.request.urlopen(metrics_url, timeout=30) as r:
        samples = {s.name: s.value for f in text_string_to_metric_families(r.read().decode()) for s in f.samples
                   if s.labels.get("method") == "classify"}
    return samples.get("fineserve_forward_passes_total", 0.0), samples.get("fineserve_batch_images_sum", 0.0)


def _reported(metrics_url: str, images: float) -> tuple[float, float]:
    """_passes, once the replicas have reported at least `images` images (they report every REPORT_S)."""
    deadline = time.monotonic() + 30 * REPORT_S
    while (passes := _passes(metrics_url))[1] < images and time.monotonic() < deadline:
        time.sleep(REPORT_S / 4)
    return passes


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--requests", type=int, default=256, help="images per concurrency level")
    parser.add_argument("--images-per-call", type=int, default=32, help="of the many-images-per-call levels")
    parser.add_argument("--many-concurrency", type=int, nargs="*", default=[8],
                        help="concurrencies of calls of --images-per-call images")
    parser.add_argument("--max-batch", type=int, default=32, help="largest ceiling batch (the server's default)")
    parser.add_argument("--rounds", type=int, default=5, help="ceiling rounds per batch size (median counts)")
    parser.add_argument("--blocks", type=int, default=8, help="alternating blocks of 32 one-image calls")
    parser.add_argument("--device", default="auto", help="of the raw side: auto (CUDA when present), cpu, cuda")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "auto"),
                        help="of both sides (passed to the front door as --serve-precision)")
    parser.add_argument("--front-doors", type=int, default=1,
                        help="more than 1: a Ray head and that many front doors on it, callers spread over them")
    parser.add_argument("server_args", nargs="*", help="after --: front-door flags, e.g. --serve-replica-gpus 1")
    args = parser.parse_args()
    server_args = ["--serve-precision", args.precision, *args.server_args]
    images = _images(64)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        asyncio.run(_publish(data_dir, ["bench", "cold"]))
        with _front_doors(data_dir, args.front_doors, server_args) as doors:
            _levels(args, doors, images, server_args)


def _levels(args: argparse.Namespace, doors: list[ServerProcess], images: list[bytes], server_args: list[str]) -> None:
    """The table, the one-image comparison and the time to first prediction (see the module's docstring)."""
    targets = [door.target for door in doors]
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"torch {torch.__version__}{gpu}; raw side on {args.device}, torch threads {torch.get_num_threads()}; "
          f"{len(doors)} front door(s); server flags: {' '.join(server_args)}")
    print("| concurrency x images per call | fineserve img/s | p50 ms | p99 ms | images per forward pass | "
          "ceiling img/s (batch) | ratio | forward only img/s | decode_jpeg (model's device) + forward img/s | "
          "CPU ms per image: callers, front doors, replicas (how many) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    model_dir = doors[0].data_dir / "models" / "default" / "bench" / "1"
    raw_run = _raw(model_dir, args.device, args.precision)
    forward_only, device_decode = _other_ceilings(model_dir, args.device, args.precision, images)
    metrics_url = doors[0].metrics_url  # every door exports the cluster-wide serving series
    fronts = [psutil.Process(door.proc.pid) for door in doors if door.proc is not None]
    counted = 0.0  # images the replicas have reported for "bench"
    levels = [(c, 1) for c in args.concurrency] + [(c, args.images_per_call) for c in args.many_concurrency]
    for c, per_call in levels:
        # An untimed burst at this concurrency first: replicas it spills to load the model, and new batch shapes
        # warm up, before the timed calls (first predictions are timed apart, below).
        asyncio.run(_through_grpc(targets, "bench", images, c, 2 * c, warm_up=False, per_call=per_call))
        counted += 2 * c * per_call
        before = _reported(metrics_url, counted)
        replicas = _replica_processes()
        calls = max(args.requests // per_call, c)
        cpu_before = [time.process_time(), sum(_cpu_seconds(fronts)), sum(_cpu_seconds(replicas))]
        rate, lat = asyncio.run(_through_grpc(targets, "bench", images, c, calls, warm_up=False, per_call=per_call))
        cpu_after = [time.process_time(), sum(_cpu_seconds(fronts)), sum(_cpu_seconds(replicas))]
        counted += calls * per_call
        after = _reported(metrics_url, counted)
        per_pass = (after[1] - before[1]) / max(after[0] - before[0], 1)
        batch = min(c * per_call, args.max_batch)
        ceiling = _ceiling(raw_run, images, batch, args.rounds)
        forward = _ceiling(forward_only, images, batch, args.rounds)
        decoded = _ceiling(device_decode, images, batch, args.rounds)
        cpu = ", ".join(f"{(b - a) / (calls * per_call) * 1e3:.2f}"
                        for a, b in zip(cpu_before, cpu_after, strict=True))
        print(f"| {c} x {per_call} | {rate:.1f} | {_pct(lat, 0.5) * 1e3:.1f} | {_pct(lat, 0.99) * 1e3:.1f} | "
              f"{per_pass:.1f} | {ceiling:.1f} ({batch}) | {rate / ceiling:.2f} | {forward:.1f} | {decoded:.1f} | "
              f"{cpu} ({len(replicas)}) |", flush=True)
    served, raw = asyncio.run(_one_image_blocks(targets[0], "bench", raw_run, images, args.blocks, 32))
    print(f"\none image at a time, {len(served)} calls each in alternating blocks of 32: fineserve p50 "
          f"{_pct(served, 0.5) * 1e3:.1f} ms, raw p50 {_pct(raw, 0.5) * 1e3:.1f} ms: "
          f"{(_pct(served, 0.5) - _pct(raw, 0.5)) * 1e3:+.1f} ms (goal: at most +5 ms)")
    _, cold = asyncio.run(_through_grpc(targets[:1], "cold", images, 1, 1, warm_up=False))
    _, warm = asyncio.run(_through_grpc(targets[:1], "cold", images, 1, 16))
    print(f"time to first prediction of a model not yet loaded: {cold[0] * 1e3:.0f} ms (load from the store, "
          f"warm-up pass, predict); its next calls: p50 {_pct(warm, 0.5) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
