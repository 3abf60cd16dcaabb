"""Grad-CAM points at the evidence for the class it explains. After a short training on images of one coloured
disk each, on held-out images holding two disks of different classes, the map for each class must peak inside
that class's disk far more often than half the time: a map that ignores the class explained (the mean of
layer4's activations, no gradients: the strongest cheap saliency map, which finds a lone disk 0.89 of the time)
can point at only one of the two. Judged over SEEDS trainings."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from worker.engine import BaseWeights, FineTuneConfig, ImageClassifier, explain, fine_tune
from worker.engine.images import decode_all
from worker.engine.vision.heatmaps import heat_peak

from .localisation_images import SIZE, Box, write_pairs, write_split

pytestmark = pytest.mark.quality

# Random init (no ImageNet weights reach this machine): 144 training images, 8 epochs at 128 px (4x4 maps).
LOCALISE = {
    "base": BaseWeights("none"),
    "image_size": SIZE,
    "batch_size": 16,
    "epochs": 8,
    "lr": 1e-2,
    "lr_mult": 10.0,
    "precision": "fp32",  # as measured (this machine has no bf16); bf16 would give other numbers
}
SEEDS = (0, 1, 2)
# Measured (2-core CPU, fp32): share of (image, class) maps peaking in that class's disk, seeds 0, 1, 2: Grad-CAM
# 0.833 0.893 0.747 (mean 0.824), layer4's mean activations 0.460 0.447 0.467; on one-disk images Grad-CAM 0.947
# 0.920 0.947, activations 0.853 0.827 0.827. With batch augmentation (f519be9): two-disk mean 0.876 against
# 0.473, one-disk 0.907 against 0.818. About 2-3.5 minutes on a 2-core machine.
BAR = 0.70
"""Mean share of (image, class) maps peaking in that class's disk; a class-blind map scores at most 0.5."""


def inside(point: tuple[int, int], box: Box) -> bool:
    x, y = point
    left, top, right, bottom = box
    return left <= x < right and top <= y < bottom


def activation_maps(model: ImageClassifier, images: list[bytes]) -> torch.Tensor:
    """The channel mean of layer4's activations per image: where the body responds, whatever the class."""
    batch = torch.stack([x for _, x in decode_all(images, lambda image: (image, model.transform(image)))])
    with torch.inference_mode():
        return model.model.body(batch.to(model.device)).mean(dim=1).cpu()


def test_heatmap_peaks_on_the_explained_class(tmp_path: Path) -> None:
    write_split(tmp_path / "data" / "train", 48, 0)
    write_split(tmp_path / "data" / "valid", 4, 500_000)
    single = write_split(tmp_path / "single", 25, 900_000)
    pairs = write_pairs(tmp_path / "pairs", 25, 700_000)
    pair_images = [path.read_bytes() for path, _, _ in pairs]
    rates: dict[str, list[float]] = {"pairs, Grad-CAM": [], "pairs, activations": [], "single, Grad-CAM": [],
                                     "single, activations": []}
    for seed in SEEDS:
        fine_tune(FineTuneConfig(**LOCALISE, seed=seed), tmp_path / "data", tmp_path / f"model-{seed}")
        model = ImageClassifier.load(tmp_path / f"model-{seed}", device="cpu")
        hits = 0
        for which in (0, 1):
            for colour in sorted({pair[which] for _, pair, _ in pairs}):
                chosen = [i for i, (_, pair, _) in enumerate(pairs) if pair[which] == colour]
                explained = explain(model, [pair_images[i] for i in chosen], colour)
                hits += sum(inside(heat_peak(e.grid, SIZE, SIZE), pairs[i][2][which])
                            for e, i in zip(explained, chosen, strict=True))
        rates["pairs, Grad-CAM"].append(hits / (2 * len(pairs)))
        # One map per image, whichever class is asked for: it can hold the peak of one of the two disks.
        blind = activation_maps(model, pair_images)
        rates["pairs, activations"].append(sum(
            inside(heat_peak(grid, SIZE, SIZE), boxes[0]) + inside(heat_peak(grid, SIZE, SIZE), boxes[1])
            for grid, (_, _, boxes) in zip(blind, pairs, strict=True)) / (2 * len(pairs)))
        single_images = [path.read_bytes() for path, _, _ in single]
        rates["single, Grad-CAM"].append(statistics.mean(
            inside(heat_peak(e.grid, SIZE, SIZE), box) for e, (_, _, box) in zip(
                explain(model, single_images), single, strict=True)))
        rates["single, activations"].append(statistics.mean(
            inside(heat_peak(grid, SIZE, SIZE), box) for grid, (_, _, box) in zip(
                activation_maps(model, single_images), single, strict=True)))
        print(f"\nseed {seed}: " + ", ".join(f"{name} {values[-1]:.3f}" for name, values in rates.items()),
              flush=True)
    summary = ", ".join(f"{name} {statistics.mean(values):.3f}" for name, values in rates.items())
    print(f"peak inside the object's box, mean over seeds {SEEDS}: {summary}")
    assert statistics.mean(rates["pairs, Grad-CAM"]) >= BAR, summary
    assert all(rate > 0.5 for rate in rates["pairs, Grad-CAM"]), summary
