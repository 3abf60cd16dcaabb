"""A fine-tune job end to end against the plain training loop: images/s of a real job (through gRPC, Ray, JPEG
files on disk, decoding, augmentation, validation and checkpoints) in its second epoch, over the strong plain loop
of train_throughput.py on random in-memory batches of the same model, size, batch and precision.

The data set is an image-folders JPEG set made from the hymenoptera photos (ants and bees): each image a random
crop of a photo, resized to about 320x240 with jitter, flipped and recoloured at random; 1 in 20 go to valid/.
The job starts from random weights (base none, so no download) and trains 2 epochs; its second epoch's time
(the Epoch event's seconds: training and validation) gives train images / s. The first epoch pays for start-up
(and, on a GPU, for decoding the data set onto the card once).

    python benchmarks/train_job_e2e.py --device cpu --images 400 --arch resnet18 --image-size 64
    python benchmarks/train_job_e2e.py --device cuda --images 20000     # ResNet-50, 224 px, bf16
(the job's batch: the engine's default for the device, 32 on CPU and 128 on CUDA, unless --batch-size is set)
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from PIL import Image, ImageEnhance, ImageOps
from train_throughput import Case, plain_rate

from fineserve_client import Client
from fineserve_common.configs import FineTuneConfig
from harness.launcher import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera"
CLASSES = ("ants", "bees")
VALID_EVERY = 20


def _sources(photos: Path) -> dict[str, list[Path]]:
    found = {c: sorted(p for split in ("train", "val") for p in (photos / split / c).glob("*.jpg")) for c in CLASSES}
    if not all(found.values()):
        raise SystemExit(f"no ants/bees photos under {photos}/{{train,val}}: pass --photos")
    return found


def _make(job: tuple[list[Path], Path, str, int, int]) -> None:
    """Images start..start+count of one class under out/{train,valid}/name: random crops of its photos, each
    photo decoded once at <= 640 px."""
    sources, out, name, start, count = job
    rng = random.Random(start * 2 + CLASSES.index(name))
    photos = []
    for path in sources:
        with Image.open(path) as image:
            image.draft("RGB", (640, 640))  # JPEG DCT scaling: a quick decode of a large photo
            photos.append(ImageOps.exif_transpose(image).convert("RGB"))
    for i in range(start, start + count):
        photo = photos[rng.randrange(len(photos))]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        image = photo.crop((x, y, x + cw, y + ch)).resize((rng.randint(288, 352), rng.randint(216, 264)))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.7, 1.3))
        split = "valid" if i % VALID_EVERY == 0 else "train"
        image.save(out / split / name / f"{i:06d}.jpg", quality=90)


def make_dataset(photos: Path, root: Path, n_images: int) -> Path:
    """root/<n_images>/{train,valid}/{ants,bees}/*.jpg, made once (a finished set is reused)."""
    out = root / str(n_images)
    done = out / "done"
    if done.exists():
        return out
    sources = _sources(photos)
    per_class = n_images // len(CLASSES)
    workers = os.cpu_count() or 1
    chunk = max(1, per_class // workers + 1)
    jobs = []
    for name in CLASSES:
        for split in ("train", "valid"):
            (out / split / name).mkdir(parents=True, exist_ok=True)
        jobs += [(sources[name], out, name, s, min(chunk, per_class - s)) for s in range(0, per_class, chunk)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_make, jobs))
    done.touch()
    return out


def run_job(data: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """(second epoch's train images/s, first epoch's seconds, train images per epoch) of a job through gRPC."""
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        server = ServerProcess(Path(tmp) / "data", "--allowed-root", str(data.parent)).start(timeout=600)
        try:
            client = Client(server.target, timeout=120)
            dataset = client.register_dataset(data, f"e2e-{data.name}")
            job = client.create_fine_tune_job(
                dataset.id, "e2e", arch=args.arch, base="none", epochs=2, batch_size=args.batch_size,
                image_size=args.image_size, precision=args.precision,
                resources={"cpu_only": args.device == "cpu"})
            epochs: dict[int, float] = {}
            batches = 0
            for event in client.watch_job(job.id, timeout=3600):
                kind = event.WhichOneof("event")
                if kind == "batch":
                    batches = event.batch.batches
                elif kind == "epoch":
                    epochs[event.epoch.epoch] = event.epoch.seconds
                elif kind == "log":
                    print("  job:", event.log.message, flush=True)
            final = client.get_job(job.id)
            if len(epochs) < 2:
                raise SystemExit(f"the job ended {final.state} without two epochs: {final.error}")
            images = batches * args.batch
            return images / epochs[2], epochs[1], images
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, help="images generated (default: 20000 on cuda, 400 on cpu)")
    parser.add_argument("--arch", help="default: resnet50 on cuda, resnet18 on cpu")
    parser.add_argument("--image-size", type=int, help="default: 224 on cuda, 64 on cpu")
    parser.add_argument("--batch-size", type=int, help="default: unset, the engine's default for the device")
    parser.add_argument("--precision", help="default: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="the hymenoptera folder (train/, val/)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "fineserve-e2e-images",
                        help="where the generated data set is kept between runs")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("no CUDA device")
    args.images = args.images or (20_000 if cuda else 400)
    args.arch = args.arch or ("resnet50" if cuda else "resnet18")
    args.image_size = args.image_size or (224 if cuda else 64)
    args.batch = FineTuneConfig(image_size=args.image_size, batch_size=args.batch_size).batch_for(args.device)
    args.precision = args.precision or ("bf16" if cuda else "fp32")
    start = time.perf_counter()
    data = make_dataset(args.photos, args.work, args.images)
    print(f"data set {data}: {args.images} JPEGs ({time.perf_counter() - start:.0f} s)", flush=True)
    job_rate, first_s, images = run_job(data, args)
    if cuda:
        torch.backends.cudnn.benchmark = True
    case = Case(args.device, args.arch, args.image_size, args.precision, args.batch, channels_last=cuda)
    plain = plain_rate(case, batches=8 if cuda else 3, rounds=5 if cuda else 3)
    header = f"{'config':<44} {'job img/s':>10} {'plain img/s':>12} {'ratio':>6}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if cuda else "")
          + f"; job: {images} training images per epoch, first epoch {first_s:.1f} s")
    print(header)
    print("-" * len(header))
    print(f"{case!s:<44} {job_rate:>10.1f} {plain:>12.1f} {job_rate / plain:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
