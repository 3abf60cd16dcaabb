"""Latency of Explain (Grad-CAM heatmaps + overlay PNGs) against Classify, through gRPC, same model and batch.

Starts an embedded fineserve server (local Ray) on a temporary data directory, fine-tunes a small ResNet-18
(random init, a few synthetic images: the weights do not change the cost) at the serving image size, then
sends the same batch of images to Classify and to Explain, alternating call by call so that a busy machine
slows both alike, and compares the medians. Grad-CAM costs one forward pass plus a backward pass through the
head only (it starts at the last stage), and one PNG per image; the goal is Explain <= 2.5x Classify.

    python benchmarks/explain_latency.py                  # 224 px, batches of 1 and 8, 15 rounds
    python benchmarks/explain_latency.py --quick          # 64 px, 3 rounds: checks that it runs
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fineserve_client import Client
from harness.launcher import ServerProcess

GOAL = 2.5


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A JPEG of smooth random blobs, about the size of a phone thumbnail."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_dataset(root: Path) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            (root / c / f"{i}.jpg").write_bytes(photo(100 * (c == "b") + i))
    return root


def _once(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px and 3 rounds: checks that it runs")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    size, rounds = (64, 3) if args.quick else (224, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        try:
            with Client(server.target, timeout=600) as fs:
                ds = fs.upload_dataset(make_dataset(Path(tmp) / "blobs"), name="blobs")
                fs.fine_tune(
                    ds.id, "bench", base="none", epochs=1, image_size=size, batch_size=8, progress=False, check=True
                )
                rows = []
                for n in args.batches:
                    images = [photo(1000 + i) for i in range(n)]
                    classify, explain = [], []
                    fs.classify("bench", images)
                    fs.explain("bench", images)
                    for _ in range(rounds):  # alternate, so that load on the machine hits both alike
                        classify.append(_once(lambda: fs.classify("bench", images)))  # noqa: B023
                        explain.append(_once(lambda: fs.explain("bench", images)))  # noqa: B023
                    c, e = statistics.median(classify), statistics.median(explain)
                    rows.append((n, c * 1e3, e * 1e3, e / c))
        finally:
            server.stop()
    print(f"\nExplain vs Classify through gRPC, resnet18 at {size} px, 320x240 JPEG inputs, median of {rounds}")
    print(f"{'batch':>5} {'Classify ms':>12} {'Explain ms':>11} {'ratio':>6}  goal <= {GOAL}x")
    for n, c, e, ratio in rows:
        print(f"{n:>5} {c:>12.1f} {e:>11.1f} {ratio:>6.2f}  {'ok' if ratio <= GOAL else 'over'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
