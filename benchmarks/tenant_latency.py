"""One tenant's one-image Classify while another tenant sends its worst legal requests, through gRPC.

Starts a fineserve server (local Ray) with API keys for two tenants and the given limits, fine-tunes one small
ResNet-18 per tenant (random init: the weights do not change the cost), then measures the victim's one-image
Classify latency (p50, p99, max) unloaded and under each attack: the attacker keeps `--attackers` calls in flight
of one kind: Classify with max-images-per-request images at max-image-pixels (a real photo, scaled, as JPEG),
Explain on one such image, or both alternating. The goal (tests/security/test_tenant_latency.py checks it at one
point): the victim's p99 within 3x its unloaded p99.

    python benchmarks/tenant_latency.py                         # 64 px models, 1 MP images, 1/4/8 attackers
    python benchmarks/tenant_latency.py --quick                 # fewer samples, 4 attackers: checks that it runs
    python benchmarks/tenant_latency.py --pixels 5000000 --image-size 224 --attackers 2 8
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from fineserve_client import Client
from harness.launcher import ServerProcess
from service.auth import hash_key, new_key, write_keys_file

PHOTO = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "val" / "ants" /
         "ants-devouring-remains-of-large-dead-insect-on-red-tile-in-Stellenbosch-South-Africa-closeup-1-DHD.jpg")
GOAL = 3.0


def scaled_photo(pixels: int) -> bytes:
    """The real 2592x1944 photo scaled to just under `pixels`, as JPEG."""
    with Image.open(PHOTO) as image:
        scale = min(1.0, (pixels / (image.width * image.height)) ** 0.5)
        small = image.convert("RGB").resize((int(image.width * scale), int(image.height * scale)))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def folders(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def latencies(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def attack(call: Callable[[int], object], stop: threading.Event, done: list[int]) -> None:
    i = 0
    while not stop.is_set():
        call(i)
        done.append(1)
        i += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--attackers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--pixels", type=int, default=1_000_000, help="the server's max-image-pixels")
    parser.add_argument("--images", type=int, default=8, help="the server's max-images-per-request")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    samples, attackers = (40, [4]) if args.quick else (args.samples, args.attackers)
    photo = scaled_photo(args.pixels)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        keys = {"victim": new_key(), "attacker": new_key()}
        write_keys_file(Path(tmp) / "keys.json", {t: [hash_key(k)] for t, k in keys.items()})
        server = ServerProcess(Path(tmp) / "data", "--api-keys-file", str(Path(tmp) / "keys.json"),
                               "--max-image-pixels", str(args.pixels), "--max-images-per-request", str(args.images),
                               "--max-message-bytes", str(64 << 20)).start()
        try:
            for seed, tenant in enumerate(keys):
                with Client(server.target, api_key=keys[tenant], timeout=600) as fs:
                    ds = fs.upload_dataset(folders(Path(tmp) / tenant, seed), name="pets")
                    fs.fine_tune(ds.id, "pets", base="none", epochs=1, image_size=args.image_size, batch_size=8,
                                 progress=False, check=True)
            opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
            model = common_pb2.ModelRef(name="pets", version=1)
            with grpc.insecure_channel(server.target, options=opts) as channel:
                stub = inference_pb2_grpc.InferenceStub(channel)
                md = {t: (("authorization", f"Bearer {k}"),) for t, k in keys.items()}
                small = inference_pb2.ClassifyRequest(model=model, images=[common_pb2.Image(data=scaled_photo(4096))])
                full = inference_pb2.ClassifyRequest(model=model, images=[common_pb2.Image(data=photo)] * args.images)
                explain = inference_pb2.ExplainRequest(model=model, images=[common_pb2.Image(data=photo)])
                calls = {
                    "Classify, max images at the pixel limit": [(stub.Classify, full)],
                    "Explain, one image at the pixel limit": [(stub.Explain, explain)],
                    "both, alternating": [(stub.Classify, full), (stub.Explain, explain)],
                }

                def victim() -> object:
                    return stub.Classify(small, metadata=md["victim"], timeout=120)

                for kind in calls.values():
                    for method, request in kind:
                        method(request, metadata=md["attacker"], timeout=300)
                latencies(victim, 10)
                quiet = latencies(victim, samples)
                rows.append(("unloaded", 0, quiet, 0, 0.0))
                for name, kind in calls.items():
                    for n in attackers:
                        stop, done = threading.Event(), []

                        def one(i: int, kind: list = kind) -> object:
                            method, request = kind[i % len(kind)]
                            return method(request, metadata=md["attacker"], timeout=300)

                        threads = [threading.Thread(target=attack, args=(one, stop, done)) for _ in range(n)]
                        for t in threads:
                            t.start()
                        time.sleep(1.0)  # every attacker has a call in flight
                        started, before = time.perf_counter(), len(done)
                        loaded = latencies(victim, samples)
                        rate = (len(done) - before) / (time.perf_counter() - started)
                        stop.set()
                        for t in threads:
                            t.join()
                        rows.append((name, n, loaded, len(done) - before, rate))
        finally:
            server.stop()
    base = float(np.percentile(rows[0][2], 99))
    print(f"\nvictim: one-image Classify, {samples} calls per row; attacker images {args.pixels:,} px "
          f"({len(photo):,} bytes JPEG), {args.images} per Classify; models at {args.image_size} px")
    print(f"{'attack':<42} {'in flight':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'x p99':>6} "
          f"{'attacks/s':>9}")
    for name, n, seconds, _, rate in rows:
        p50, p99, top = (float(np.percentile(seconds, q)) * 1e3 for q in (50, 99, 100))
        print(f"{name:<42} {n:>9} {p50:>7.1f} {p99:>7.1f} {top:>7.1f} {p99 / base / 1e3:>6.2f} {rate:>9.1f}")
    print(f"goal: p99 <= {GOAL}x unloaded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
