from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fineserve_common.events import Batch, Epoch, Event, Log
from worker.engine import BaseWeights, Cancelled, DatasetError, EngineError, FineTuneConfig, fine_tune

from .synthetic_images import TINY, write_class

# 32 px, 3 epochs (a random body trains every epoch unfrozen): on 2 cores (AMD EPYC, fp32) about 19 s a run;
# accuracy 0.971-0.993 over seeds 0-3 (at 48 px and 4 epochs, 0.974-0.997 in 45 s). batch_size unset: the device's
# default, 32 on a CPU.
MNIST = {"base": BaseWeights("none"), "image_size": 32, "epochs": 3, "lr": 5e-3, "lr_mult": 10.0}


def test_resnet18_from_scratch_learns_mnist_tiny(shared_data: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    start = time.perf_counter()
    result = fine_tune(FineTuneConfig(**MNIST), shared_data / "mnist_tiny", tmp_path / "model", events.append)
    seconds = time.perf_counter() - start
    accuracy = result.metrics["accuracy"]
    print(f"mnist_tiny resnet18 from scratch: accuracy {accuracy:.4f} in {seconds:.1f}s")
    assert accuracy >= 0.95, result.metrics

    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card == result.card
    assert card["classes"] == ["3", "7"] and card["n_classes"] == 2 and card["task"] == "image_classification"
    assert card["dataset"] == {"train_images": 709, "valid_images": 699, "skipped_files": 0}
    assert card["hyperparameters"] == {**FineTuneConfig(**MNIST).to_dict(), "batch_size": 32}  # the batch that ran
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["card.json", "model.safetensors"]

    batches = [e for e in events if isinstance(e, Batch)]
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert [e.epoch for e in epochs] == [1, 2, 3] and {e.phase for e in epochs} == {"stage-0"}
    assert len(batches) == 3 * (709 // 32) and batches[-1].batch == batches[-1].batches == 709 // 32
    # the kept epoch's (keep "best"); the headline metrics are the served model's
    assert epochs[card["kept"]["epoch"] - 1].metrics == card["training_metrics"]
    json.dumps([dataclasses.asdict(e) for e in events])  # plain numbers, no tensors


def test_frozen_phase_trains_head_and_batchnorm_only(tiny_dataset: Path, tmp_path: Path,
                                                    seeded_torch_home: dict[str, torch.Tensor]) -> None:
    cfg = FineTuneConfig(**{**TINY, "base": BaseWeights("torchvision"), "freeze_epochs": 1, "epochs": 0})
    events: list[Event] = []
    fine_tune(cfg, tiny_dataset, tmp_path, events.append)
    saved = safetensors.torch.load_file(tmp_path / "model.safetensors")
    assert torch.equal(saved["body.layer4.1.conv2.weight"], seeded_torch_home["layer4.1.conv2.weight"])
    assert not torch.equal(saved["body.layer4.1.bn2.weight"], seeded_torch_home["layer4.1.bn2.weight"])
    assert {e.phase for e in events if isinstance(e, Epoch)} == {"stage-0"}
    assert any("ResNet18_Weights.IMAGENET1K_V1" in e.message for e in events if isinstance(e, Log))


def test_two_phases_number_epochs_across_the_job(tiny_dataset: Path, tmp_path: Path,
                                                 seeded_torch_home: dict[str, torch.Tensor]) -> None:
    cfg = FineTuneConfig(**{**TINY, "base": BaseWeights("torchvision"), "freeze_epochs": 1, "epochs": 2})
    events: list[Event] = []
    fine_tune(cfg, tiny_dataset, tmp_path, events.append)
    epochs = [(e.phase, e.epoch, e.epochs) for e in events if isinstance(e, Epoch)]
    assert epochs == [("stage-0", 1, 3), ("stage-1", 2, 3), ("stage-1", 3, 3)]
    head_lrs = [e.lr for e in events if isinstance(e, Batch) and e.phase == "stage-1"]
    assert max(head_lrs) == pytest.approx(TINY["lr"] / 2, rel=0.05)  # 1cycle peak of the head group


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_gives_the_same_model(precision: str, tiny_dataset: Path, tmp_path: Path) -> None:
    """bf16 too (autocast on the CPU): the saved weights stay fp32."""
    cfg = FineTuneConfig(**{**TINY, "precision": precision, "device": "cpu", "mixup_alpha": 0.4})
    cards = [fine_tune(cfg, tiny_dataset, tmp_path / name).card for name in ("a", "b")]
    a, b = (safetensors.torch.load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert cards[0]["precision"] == precision
    assert all(v.dtype in (torch.float32, torch.int64) for v in a.values())


def test_should_stop_cancels_before_the_next_batch(tiny_dataset: Path, tmp_path: Path) -> None:
    events: list[Event] = []
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        fine_tune(FineTuneConfig(**TINY), tiny_dataset, tmp_path / "out", events.append,
                  should_stop=lambda: next(calls) >= 2)
    assert [e.batch for e in events if isinstance(e, Batch)] == [1, 2]
    assert not (tmp_path / "out").exists()


def test_one_class_data_set_is_rejected(tmp_path: Path) -> None:
    write_class(tmp_path / "data" / "train" / "only", False, 4, 0)
    with pytest.raises(DatasetError, match="at least 2 class folders"):
        fine_tune(FineTuneConfig(**TINY), tmp_path / "data", tmp_path / "out")


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks the GPU here")
def test_fp16_without_a_gpu_is_an_error(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="fp16 needs a GPU"):
        fine_tune(FineTuneConfig(**{**TINY, "precision": "fp16"}), tiny_dataset, tmp_path)
