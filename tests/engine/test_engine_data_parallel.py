"""Data-parallel fine_tune on two gloo ranks (the engine's side of a Ray Train job) against the one-process run on
the same real data: sharded training and validation, metrics reduced over ranks, files and events from rank 0."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import multiprocessing

from worker.engine import FineTuneConfig, fine_tune
from worker.engine.vision.classifier import ImageClassifier

from .data_parallel_ranks import train_rank, weights_digest
from .test_engine_training import MNIST

# The two-rank run shuffles differently and its BatchNorm sees 16 images per step instead of 32, so the runs are
# not identical: "a small tolerance" is 2 points of accuracy (14 of 699 validation images).
TOLERANCE = 0.02
# test_engine_training's mnist_tiny recipe (32 px, 3 epochs: at 2, one thread, seeds 0-2 reached 0.947-0.977 and
# one kept its first epoch; at 3, 0.979-0.987), and both sides report their last epoch: like with like, not each
# run's best by its own validation set.
RECIPE = {**MNIST, "keep": "last"}


def _saved_model_accuracy(model_dir: Path, valid: Path) -> float:
    """The written model's accuracy on the whole validation set, in this one process."""
    classifier = ImageClassifier.load(model_dir, device="cpu")
    files = sorted(valid.glob("*/*.png"))
    correct = 0
    for i in range(0, len(files), 128):
        chunk = files[i:i + 128]
        top = classifier.classify([f.read_bytes() for f in chunk], top_k=1)
        correct += sum(t[0][0] == f.parent.name for t, f in zip(top, chunk, strict=True))
    return correct / len(files)


def test_two_ranks_match_one_process_on_mnist_tiny(shared_data: Path, tmp_path: Path) -> None:
    data = shared_data / "mnist_tiny"
    cfg = FineTuneConfig(**{**RECIPE, "device": "cpu"})
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (train_rank): a run's numbers depend on its thread count
    try:
        single = fine_tune(cfg, data, tmp_path / "single")
    finally:
        torch.set_num_threads(threads)
    single_s = time.perf_counter() - start

    report = tmp_path / "report"
    report.mkdir()
    start = time.perf_counter()
    multiprocessing.spawn(train_rank, nprocs=2, args=(2, f"file://{tmp_path / 'rendezvous'}", cfg.to_dict(),
                                                      str(data), str(tmp_path / "ddp"), str(report)))
    ddp_s = time.perf_counter() - start
    ranks = [json.loads((report / f"{r}.json").read_text()) for r in (0, 1)]
    one, two = single.metrics["accuracy"], ranks[0]["metrics"]["accuracy"]
    saved = _saved_model_accuracy(tmp_path / "ddp", data / "valid")
    print(f"\nmnist_tiny resnet18 from scratch, {cfg.epochs} epochs: 1 process accuracy {one:.4f} ({single_s:.0f}s), "
          f"2 gloo ranks accuracy {two:.4f} (saved model re-evaluated: {saved:.4f}) ({ddp_s:.0f}s)")

    # Gradients were averaged: both ranks, each trained on its own half of the data, end with the same parameters
    # (bit for bit), and with rank 0's BatchNorm statistics (each rank's last step updates its own; the epoch's end
    # shares rank 0's, so both validate the model rank 0 wrote).
    stored = ImageClassifier.load(tmp_path / "ddp", device="cpu").model
    assert ranks[0]["weights"]["parameters"] == ranks[1]["weights"]["parameters"], "the ranks' weights differ"
    assert ranks[0]["weights"]["buffers"] == ranks[1]["weights"]["buffers"], "the ranks' BatchNorm statistics differ"
    assert ranks[0]["weights"] == {"parameters": weights_digest(stored), "buffers": weights_digest(stored, True)}
    assert abs(two - one) <= TOLERANCE and two >= 0.95, (one, two)
    # Metrics are shared over ranks: both ranks report the same numbers, and the sharded served pass counts every
    # image once (the saved model, evaluated whole in one process, scores what the ranks reported, up to an image
    # that the CPU kernels of another batch size may tip).
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert abs(saved - two) <= 1 / 699 + 1e-9, (saved, two)
    # Rank 0 alone reports events and writes: the model and card, with no checkpoint left behind.
    assert ranks[1]["events"] == []
    events = ranks[0]["events"]
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, cfg.epochs + 1))
    assert sum(e["type"] == "checkpoint" for e in events) == cfg.epochs
    batches = [e for e in events if e["type"] == "batch"]
    assert batches[-1]["batches"] == (709 // 2) // (32 // 2)  # the CPU default: each rank 16 per step of its half
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["card.json", "model.safetensors"]
    card = json.loads((tmp_path / "ddp" / "card.json").read_text())
    assert card["metrics"]["accuracy"] == two and card["dataset"]["valid_images"] == 699
    assert card["kept"]["epoch"] == single.card["kept"]["epoch"] == cfg.epochs  # the same epoch compared
    assert torch.distributed.is_initialized() is False
