"""Every body the task table offers, trained and served: ResNet-34 and ResNet-50 classifiers and U-Nets on them
(resnet18 is everywhere else). Tiny images and one epoch from random weights: what is checked is that each
architecture builds, trains, is written and is rebuilt from its files to answer as the trained model does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from worker.engine import FineTuneConfig, fine_tune, load_served_model, prepare_for_serving
from worker.engine.vision.classifier import ImageClassifier
from worker.engine.vision.family import VisionJob
from worker.engine.vision.segmenter import ImageSegmenter

from .synthetic_images import TINY
from .test_engine_segmentation import CODES, _write


@pytest.fixture(scope="module")
def small_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("scenes"), 6, valid=[0, 5])


def _trained(monkeypatch: pytest.MonkeyPatch, cfg: FineTuneConfig, data: Path, out: Path) -> nn.Module:
    """fine_tune's model as it was in memory when the files were written."""
    seen: list[nn.Module] = []
    card_fields = VisionJob.card_fields

    def recording(self: VisionJob, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        seen.append(model)
        return card_fields(self, model, metrics)

    monkeypatch.setattr(VisionJob, "card_fields", recording)
    fine_tune(cfg, data, out)
    assert len(seen) == 1
    return seen[0].eval()


def _body_matches_torchvision(body: nn.Module, arch: str) -> None:
    """The served body is the torchvision architecture named (a ResNet-50 has bottleneck blocks, 2048 channels)."""
    reference = getattr(torchvision.models, arch)(weights=None).state_dict()
    shapes = {k: v.shape for k, v in body.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.items() if not k.startswith("fc.")}


@pytest.mark.parametrize("arch", ["resnet34", "resnet50"])
def test_classifier_trains_and_serves_from_its_files(arch: str, tiny_dataset: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = FineTuneConfig(**{**TINY, "arch": arch, "image_size": 16, "device": "cpu"})
    trained = _trained(monkeypatch, cfg, tiny_dataset, tmp_path)
    served = prepare_for_serving(load_served_model(tmp_path, device="cpu"), "fp32", 8)
    assert isinstance(served, ImageClassifier) and served.card["arch"] == arch
    _body_matches_torchvision(served.model.body, arch)
    images = [p.read_bytes() for p in sorted((tiny_dataset / "valid").rglob("*.*"))]
    batch = served.preprocess(images)
    with torch.no_grad():
        expected = trained(batch).softmax(dim=1)
    torch.testing.assert_close(served.predict_tensor(batch), expected, rtol=0, atol=1e-5)
    answers = served.classify(images, top_k=1)
    assert [a[0][0] for a in answers] == [served.classes[i] for i in expected.argmax(dim=1).tolist()]


@pytest.mark.parametrize("arch", ["resnet34", "resnet50"])
def test_unet_trains_and_serves_from_its_files(arch: str, small_scenes: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = FineTuneConfig(task="segmentation", arch=arch, base=TINY["base"], image_size=32, batch_size=2, epochs=1,
                         lr=1e-2, device="cpu")
    trained = _trained(monkeypatch, cfg, small_scenes, tmp_path)
    served = prepare_for_serving(load_served_model(tmp_path, device="cpu"), "fp32", 8)
    assert isinstance(served, ImageSegmenter) and served.card["arch"] == arch and served.classes == CODES
    _body_matches_torchvision(served.model.body, arch)
    images = [p.read_bytes() for p in sorted((small_scenes / "images").glob("*.png"))]
    batch, sizes = served.preprocess(images)
    with torch.no_grad():
        expected = trained(batch)
    logits = served.predict_logits(batch)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)
    for seg, (height, width), x in zip(served.segment(images), sizes, logits, strict=True):
        assert (seg.height, seg.width) == (height, width)
        assert seg.mask_png == served.segmentation(x, (height, width), False).mask_png
