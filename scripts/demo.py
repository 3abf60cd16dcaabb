"""The fineserve demo: the embedded service end to end on a small real data set.

Starts the service (local Ray, SQLite, filesystem model store under a temporary data directory), uploads
mnist_tiny through the SDK, fine-tunes ResNet-18 with a progress bar, classifies the validation images and
prints a result table, then stops the service with SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from fineserve.v1 import training_pb2
from fineserve_client import Client
from harness.launcher import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "mnist_tiny"
URL = "https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz"
CACHE = Path.home() / ".cache" / "fineserve"


def mnist_tiny() -> Path:
    """../shared/data/mnist_tiny when present, else fast.ai's public copy, downloaded once."""
    if SHARED.is_dir():
        return SHARED
    target = CACHE / "mnist_tiny"
    if not target.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        archive = CACHE / "mnist_tiny.tgz"
        print(f"downloading {URL}")
        urllib.request.urlretrieve(URL, archive)
        with tarfile.open(archive) as tf:
            tf.extractall(CACHE, filter="data")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="none",
                        help="base weights: none (random, fine for digits), imagenet, model:NAME, file:PATH")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()

    data = mnist_tiny()
    valid = sorted((data / "valid").glob("*/*.png"))
    with tempfile.TemporaryDirectory(prefix="fineserve-demo-") as tmp:
        server = ServerProcess(Path(tmp) / "data").start()
        print(f"fineserve is up at {server.target} (log: {server.log_path})")
        try:
            with Client(server.target, timeout=120) as fs:
                ds = fs.upload_dataset(data, name="mnist_tiny", progress=True)
                print(f"dataset {ds.id}: classes {list(ds.summary.classes)}, "
                      f"{ds.summary.train_items} train / {ds.summary.valid_items} valid images")
                job = fs.fine_tune(ds.id, "digits", arch="resnet18", base=args.base, epochs=args.epochs,
                                   image_size=48, lr=5e-3, lr_mult=10, flip=False, progress=True, check=False)
                print(f"job {job.id}: {training_pb2.JobState.Name(job.state)} {job.error}")
                if job.state != training_pb2.SUCCEEDED:
                    raise SystemExit(1)
                results = fs.classify("digits", [str(p) for p in valid], top_k=2)
        finally:
            code = server.stop()
            print(f"service stopped (exit code {code})")
    per_class: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for path, res in zip(valid, results, strict=True):
        per_class[path.parent.name][0] += res.label == path.parent.name
        per_class[path.parent.name][1] += 1
    print(f"\n{'class':>5}  {'images':>6}  {'correct':>7}  {'accuracy':>8}")
    for label, (ok, n) in sorted(per_class.items()):
        print(f"{label:>5}  {n:>6}  {ok:>7}  {ok / n:>8.3f}")
    ok = sum(v[0] for v in per_class.values())
    print(f"{'all':>5}  {len(valid):>6}  {ok:>7}  {ok / len(valid):>8.3f}")
    print("\nfirst predictions:")
    for path, res in list(zip(valid, results, strict=True))[:5]:
        print(f"  {path.parent.name}/{path.name}: {res.label} ({res.probability:.3f})")


if __name__ == "__main__":
    main()
