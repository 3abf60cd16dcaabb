"""Segmentation in the engine: the U-Net on the classifier's body, the IMAGE_MASKS layout, the metrics, the shared
recipe (frozen encoder then discriminative rates, progressive resizing) and serving masks at any input size."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from fineserve_common.events import Checkpoint, Epoch, Event, Log
from worker.engine import (
    BaseWeights,
    Cancelled,
    DatasetError,
    FineTuneConfig,
    Stage,
    explain,
    find_lr,
    fine_tune,
    load_served_model,
)
from worker.engine.train_loop import IGNORE_INDEX
from worker.engine.vision.base_weights import load_base_weights
from worker.engine.vision.masks import MaskedImageDataset, input_hw, scan_image_masks
from worker.engine.vision.segmentation_metrics import ConfusionMatrix
from worker.engine.vision.segmenter import ImageSegmenter
from worker.engine.vision.unet import ResNetUNet

CODES = ["sky", "red", "blue", "Void"]
COLOURS = {1: (220, 30, 30), 2: (30, 30, 220)}


def _scene(seed: int, width: int = 40, height: int = 30) -> tuple[Image.Image, Image.Image]:
    """A sky band on top, a red and a blue block below (split at a random column), a void strip at the bottom."""
    rng = np.random.default_rng(seed)
    split = int(rng.integers(width // 4, 3 * width // 4))
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 3 :, :split] = 1
    mask[height // 3 :, split:] = 2
    mask[-3:, :] = 3
    pixels = np.full((height, width, 3), (120, 190, 250), dtype=np.uint8)
    for c, colour in COLOURS.items():
        pixels[mask == c] = colour
    pixels[mask == 3] = rng.integers(0, 255, (int((mask == 3).sum()), 3))
    noise = rng.integers(0, 30, pixels.shape)
    return Image.fromarray(np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)), Image.fromarray(mask)


def _write(root: Path, n: int, suffix: str = "_P", valid: list[int] | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "codes.txt").write_text("\n".join(CODES) + "\n")
    for i in range(n):
        image, mask = _scene(i)
        image.save(root / "images" / f"s{i:02d}.png")
        mask.save(root / "labels" / f"s{i:02d}{suffix}.png")
    if valid is not None:
        (root / "valid.txt").write_text("".join(f"s{i:02d}.png\n" for i in valid))
    return root


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("scenes"), 12, valid=[0, 5, 10])


def test_unet_gives_logits_at_the_input_size_with_a_skip_from_every_stage() -> None:
    model = ResNetUNet("resnet18", 5).eval()
    for height, width in ((48, 64), (96, 128), (37, 50)):
        assert model(torch.randn(2, 3, height, width)).shape == (2, 5, height, width)
    assert len(model.decoder.blocks) == 4  # stem, layer1, layer2, layer3; layer4 feeds the middle conv
    groups = model.layer_groups()
    assert len(groups) == 3 and groups[-1][0] is model.decoder
    model.freeze_to(2)
    frozen = [p for n, p in model.named_parameters() if n.startswith("body.layer3.0.conv1")]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert model.body.layer3[0].bn1.weight.requires_grad  # fast.ai's train_bn
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_encoder_loads_from_a_stored_classifier(tiny_model: Path) -> None:
    """A classifier fine-tuned in fineserve becomes the encoder: its body, not its head."""
    model = ResNetUNet("resnet18", 4)
    base = load_base_weights(BaseWeights("store", path=str(tiny_model)), "resnet18", model.body)
    stored = safetensors.torch.load_file(tiny_model / "model.safetensors")
    for key, value in model.body.state_dict().items():
        assert torch.equal(value, stored[f"body.{key}"]), key
    assert "stored model" in base.description


def test_scan_pairs_images_with_masks_and_finds_void(scenes: Path, tmp_path: Path) -> None:
    data = scan_image_masks(scenes, 0.2, 0, None)
    assert data.classes == CODES and data.void_index == 3 and data.image_hw == (30, 40)
    assert [p[0].name for p in data.valid] == ["s00.png", "s05.png", "s10.png"] and len(data.train) == 9
    assert all(mask.name == image.stem + "_P.png" for image, mask in data.train)
    assert scan_image_masks(scenes, 0.2, 0, "").void_index is None
    assert scan_image_masks(scenes, 0.2, 0, "sky").void_index == 0
    with pytest.raises(DatasetError, match="void_code 'void' is not a class"):
        scan_image_masks(scenes, 0.2, 0, "void")
    plain = _write(tmp_path / "plain", 5, suffix="")
    data = scan_image_masks(plain, 0.2, 0, None)
    assert len(data.train) == 4 and len(data.valid) == 1 and data.train[0][1].name == data.train[0][0].name
    (plain / "labels" / "s02.png").unlink()
    with pytest.raises(DatasetError, match=r"no mask for s02\.png"):
        scan_image_masks(plain, 0.2, 0, None)
    assert input_hw((30, 40), 64) == (48, 64) and input_hw((40, 30), 64) == (64, 48)


def test_masks_are_read_as_class_indices_with_void_ignored(scenes: Path, tmp_path: Path) -> None:
    data = scan_image_masks(scenes, 0.2, 0, None)
    ds = MaskedImageDataset(data.train, data, 40, (0.5,) * 3, (0.25,) * 3, train=False)
    torch.manual_seed(0)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 30, 40) and y.shape == (30, 40) and y.dtype == torch.int64
        assert set(y.unique().tolist()) == {IGNORE_INDEX, 0, 1, 2}
        labelled = y != IGNORE_INDEX  # the void strip has random colours
        red = x[0] > x[2] + 1  # normalised red well above blue: the mask says red there, flipped or not
        assert torch.equal(red[labelled], y[labelled] == 1)
    bad = _write(tmp_path / "bad", 3)
    Image.fromarray(np.full((30, 40), 7, dtype=np.uint8)).save(bad / "labels" / "s01_P.png")
    data = scan_image_masks(bad, 0.34, 0, None)
    ds = MaskedImageDataset(data.train + data.valid, data, 40, (0.5,) * 3, (0.25,) * 3, train=False)
    with pytest.raises(DatasetError, match=r"s01_P\.png has pixel value 7 but codes\.txt names only 4"):
        [ds[i] for i in range(len(ds))]


def test_confusion_matrix_metrics_leave_out_void_and_absent_classes() -> None:
    cm = ConfusionMatrix(["a", "b", "c", "Void"], 3, torch.device("cpu"))
    y = torch.tensor([[0, 0, 1, 1, IGNORE_INDEX]])
    pred = torch.tensor([[0, 1, 1, 1, 2]])
    cm.update(torch.nn.functional.one_hot(pred, 4).permute(0, 2, 1).float()[..., None], y[..., None])
    metrics = cm.metrics()
    # a: tp 1, fn 1 -> IoU 1/2, Dice 2/3; b: tp 2, fp 1 -> IoU 2/3, Dice 4/5; c never occurs (its one
    # prediction was on a void pixel)
    assert metrics["iou:a"] == pytest.approx(1 / 2) and metrics["iou:b"] == pytest.approx(2 / 3)
    assert "iou:c" not in metrics and "iou:Void" not in metrics
    assert metrics["mean_iou"] == pytest.approx(7 / 12)
    assert metrics["dice"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_fine_tune_unet_from_a_stored_classifier_then_serve(scenes: Path, tiny_model: Path, tmp_path: Path) -> None:
    """The recipe's schedule on a U-Net: frozen encoder at half size, then unfrozen at full size; then masks at
    the inputs' own sizes."""
    cfg = FineTuneConfig(
        task="segmentation",
        base=BaseWeights("store", path=str(tiny_model)),
        image_size=40,
        batch_size=3,
        lr=1e-2,
        stages=(Stage(2, 2, 20), Stage(4, 0, 40)),
        seed=1,
    )
    events: list[Event] = []
    result = fine_tune(cfg, scenes, tmp_path / "model", on_event=events.append)
    card = result.card
    assert card["task"] == "segmentation" and card["classes"] == CODES and card["void_code"] == "Void"
    assert card["input_size"] == [30, 40] and card["image_size"] == 40
    stages = [e.message for e in events if isinstance(e, Log) and e.message.startswith("stage")]
    assert "groups before 2 frozen, image size 20" in stages[0] and "image size 40" in stages[1]
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert {"accuracy", "mean_iou", "dice", "iou:sky"} <= set(epochs[-1].metrics)
    print(
        f"\nsynthetic scenes, 6 epochs: pixel accuracy {card['metrics']['accuracy']:.3f}, "
        f"mean IoU {card['metrics']['mean_iou']:.3f}"
    )
    assert card["metrics"]["accuracy"] > 0.95, card["metrics"]  # 0.997-1.000 over seeds 0-2

    served = load_served_model(tmp_path / "model")
    assert isinstance(served, ImageSegmenter)
    inputs = []
    for size in ((40, 30), (57, 23), (120, 90)):
        buf = io.BytesIO()
        _scene(99)[0].resize(size).save(buf, "PNG")
        inputs.append(buf.getvalue())
    results = served.segment(inputs, probabilities=True)
    for size, seg in zip(((40, 30), (57, 23), (120, 90)), results, strict=True):
        mask = Image.open(io.BytesIO(seg.mask_png))
        assert mask.size == size == (seg.width, seg.height) and mask.mode == "P"
        assert np.array(mask).max() < len(CODES)
        assert sum(share for _, share in seg.shares) == pytest.approx(1.0)
        probs = np.stack([np.array(Image.open(io.BytesIO(png))) for _, png in seg.probabilities]).astype(int)
        assert probs.shape == (len(CODES), size[1], size[0]) and abs(probs.sum(0) - 255).max() <= 2
        # the mask is the argmax of the maps (up to their 8-bit rounding)
        assert (probs.max(0) - np.take_along_axis(probs, np.array(mask)[None].astype(int), 0)[0]).max() <= 1
    again = served.segment(inputs[:1])[0]
    assert again.mask_png == results[0].mask_png and again.probabilities == []

    # Grad-CAM of a class's predicted region: a map per image, an overlay over the whole input
    heatmaps = explain(served, inputs, "red") + explain(served, inputs[:1])
    for e, size in zip(heatmaps, [(40, 30), (57, 23), (120, 90), (40, 30)], strict=True):
        assert 0.0 <= float(e.grid.min()) <= float(e.grid.max()) <= 1.0 and e.grid.dim() == 2
        with Image.open(io.BytesIO(e.overlay_png)) as overlay:
            assert overlay.size == size
    assert [e.target for e in heatmaps[:3]] == ["red"] * 3 and heatmaps[3].target in CODES
    assert json.loads((tmp_path / "model" / "card.json").read_text())["task"] == "segmentation"


def test_lr_range_test_runs_on_the_unet(scenes: Path) -> None:
    cfg = FineTuneConfig(task="segmentation", base=BaseWeights("none"), image_size=40, batch_size=3)
    result = find_lr(cfg, scenes, start_lr=1e-5, end_lr=1.0, num_batches=6)
    assert 2 <= len(result.points) <= 6 and 1e-5 <= result.suggestions["valley"] <= 1.0


def test_segment_benchmark_quick_mode_prints_the_table() -> None:
    """benchmarks/segment_throughput.py runs and prints its table (no timing assertions: CI machines vary)."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "benchmarks/segment_throughput.py", "--quick"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    print(out)
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "x" in line.split("|")[1]]
    assert [row[0].strip() for row in rows] == ["128x96", "480x360"]
    assert all(float(row[-1]) > 0 for row in rows)


def test_interrupted_segmentation_job_resumes_to_the_same_weights(scenes: Path, tmp_path: Path) -> None:
    """Checkpoints carry the U-Net, the per-class metrics and the flip RNG across the change of image size."""
    cfg = FineTuneConfig(
        task="segmentation",
        base=BaseWeights("none"),
        image_size=40,
        batch_size=3,
        lr=1e-2,
        stages=(Stage(1, 0, 20), Stage(1, 0, 40)),
        precision="fp32",
        device="cpu",
    )
    reference = fine_tune(cfg, scenes, tmp_path / "whole")
    events: list[Event] = []

    def stop() -> bool:
        return any(isinstance(e, Checkpoint) for e in events)

    with pytest.raises(Cancelled):
        fine_tune(cfg, scenes, tmp_path / "resumed", events.append, stop)
    resumed = fine_tune(cfg, scenes, tmp_path / "resumed", events.append)
    assert any(isinstance(e, Log) and e.message == "resumed from checkpoint after epoch 1" for e in events)
    assert resumed.metrics == reference.metrics and "iou:red" in resumed.metrics
    expected = safetensors.torch.load_file(tmp_path / "whole" / "model.safetensors")
    got = safetensors.torch.load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)
