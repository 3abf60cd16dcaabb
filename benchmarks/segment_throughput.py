"""Segmentation serving throughput (images/s): the engine's ImageSegmenter against a plain PyTorch pipeline.

Both serve the same U-Net (random weights: speed does not depend on them) on the same encoded PNG inputs, in
the same process, alternating round by round; each side's median round counts. The engine side is what a
replica runs per batch: ImageSegmenter.preprocess, predict_logits (one forward per image on CPU, so an image's
mask does not depend on its batch-mates) and segmentation (logits scaled to the input's size class by class,
argmax, palette PNG, shares). The plain side decodes and resizes the same way, runs one batched forward,
scales all logits at once, takes the argmax and writes a grey PNG.

    python benchmarks/segment_throughput.py            # CPU, 128x96 and 480x360 inputs
    python benchmarks/segment_throughput.py --quick    # a few images: checks that it runs
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from PIL import Image
from torch.nn import functional as F
from torchvision.transforms import functional as TF

from fineserve_common.card import FORMAT_VERSION
from worker.engine.model_card import save_model
from worker.engine.vision.segmenter import ImageSegmenter
from worker.engine.vision.transforms import IMAGENET_MEAN, IMAGENET_STD
from worker.engine.vision.unet import ResNetUNet

N_CLASSES = 32
INPUT_HW = (96, 128)


def _inputs(n: int, size: tuple[int, int]) -> list[bytes]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=gen, dtype=torch.uint8)
        buf = io.BytesIO()
        Image.frombytes("RGB", size, pixels.numpy().tobytes()).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _plain(model: ResNetUNet) -> Callable[[list[bytes]], list[bytes]]:
    def run(images: list[bytes]) -> list[bytes]:
        decoded = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
        batch = torch.stack(
            [
                TF.normalize(TF.resize(TF.to_tensor(im), list(INPUT_HW), antialias=True), IMAGENET_MEAN, IMAGENET_STD)
                for im in decoded
            ]
        )
        with torch.inference_mode():
            logits = model(batch)
            masks = []
            for im, x in zip(decoded, logits, strict=True):
                up = F.interpolate(x[None], size=(im.height, im.width), mode="bilinear", align_corners=False)
                mask = up[0].argmax(0).to(torch.uint8)
                buf = io.BytesIO()
                Image.frombytes("L", (im.width, im.height), mask.numpy().tobytes()).save(buf, "PNG")
                masks.append(buf.getvalue())
        return masks

    return run


def _time(run: Callable[[list[bytes]], object], images: list[bytes]) -> float:
    start = time.perf_counter()
    run(images)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few images per case")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = (4, 2) if args.quick else (32, args.rounds)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = ResNetUNet("resnet18", N_CLASSES).eval()
        card = {
            "format_version": FORMAT_VERSION,
            "task": "segmentation",
            "arch": "resnet18",
            "classes": [f"c{i}" for i in range(N_CLASSES)],
            "n_classes": N_CLASSES,
            "image_size": 128,
            "input_size": list(INPUT_HW),
            "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        }
        save_model(tmp, model.state_dict(), card)
        engine = ImageSegmenter.load(tmp, device="cpu")
        plain = _plain(model)
        print("| input | images | fineserve img/s | plain PyTorch img/s | ratio |\n|---|---|---|---|---|")
        for size in ((128, 96), (480, 360)):
            images = _inputs(n, size)
            engine.segment(images[:1]), plain(images[:1])  # warm-up
            ours, base = [], []
            for _ in range(rounds):
                ours.append(_time(engine.segment, images))
                base.append(_time(plain, images))
            a, b = statistics.median(ours), statistics.median(base)
            print(f"| {size[0]}x{size[1]} | {n} | {a:.1f} | {b:.1f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
