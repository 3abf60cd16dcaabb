from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torchvision

from fineserve_common.errors import InvalidArgument
from fineserve_common.events import Batch, Event
from worker.engine import BaseWeights, FineTuneConfig, WeightsUnavailable, fine_tune
from worker.engine.vision.base_weights import load_base_weights
from worker.engine.vision.resnet import ResNetClassifier
from worker.engine.vision.transforms import IMAGENET_MEAN

from .conftest import RESNET18_FILE
from .synthetic_images import TINY


def body(arch: str = "resnet18") -> torch.nn.Module:
    return ResNetClassifier(arch, 2).body


def assert_body_equals(loaded: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = loaded.state_dict()
    assert set(state) == {k for k in expected if not k.startswith("fc.")}
    for key, value in state.items():
        assert torch.equal(value, expected[key]), key


def test_torchvision_weights_come_from_the_torch_home_cache(seeded_torch_home: dict[str, torch.Tensor]) -> None:
    assert torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.endswith("/" + RESNET18_FILE)
    for name in ("IMAGENET1K_V1", "DEFAULT"):
        loaded = body()
        base = load_base_weights(BaseWeights("torchvision", name), "resnet18", loaded)
        assert_body_equals(loaded, seeded_torch_home)
        assert base.mean == IMAGENET_MEAN and "ResNet18_Weights.IMAGENET1K_V1" in base.description


def test_torchvision_weights_offline_and_not_cached_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                offline: None) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as info:
        load_base_weights(BaseWeights("torchvision", "IMAGENET1K_V1"), "resnet18", body())
    message = str(info.value)
    assert "ResNet18_Weights.IMAGENET1K_V1" in message
    assert str(tmp_path / "hub" / "checkpoints" / RESNET18_FILE) in message
    assert "no network" in message


def test_unknown_torchvision_weight_name_is_refused_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    # The config cannot know torchvision's weight enums: base loading checks the name, before any batch.
    with pytest.raises(InvalidArgument, match=r"base\.name must be one of .*IMAGENET1K_V1"):
        load_base_weights(BaseWeights("torchvision", "IMAGENET1K_V9"), "resnet18", body())
    events: list[Event] = []
    cfg = FineTuneConfig(base=BaseWeights("torchvision", "IMAGENET1K_V9"), image_size=32, batch_size=8)
    with pytest.raises(InvalidArgument, match=r"base\.name"):
        fine_tune(cfg, tiny_dataset, tmp_path / "out", events.append)
    assert not any(isinstance(e, Batch) for e in events)
    assert not (tmp_path / "out").exists()


def test_fine_tune_with_missing_weights_fails_before_training(tiny_dataset: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, offline: None) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    events: list[Event] = []
    with pytest.raises(WeightsUnavailable):
        fine_tune(FineTuneConfig(image_size=32, batch_size=8), tiny_dataset, tmp_path / "out", events.append)
    assert not any(isinstance(e, Batch) for e in events)
    assert not (tmp_path / "out").exists()


def test_file_weights_in_torchvision_and_fineserve_layouts(tmp_path: Path, tiny_model: Path) -> None:
    torch.manual_seed(2)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(reference, tmp_path / "tv.pth")
    loaded = body()
    load_base_weights(BaseWeights("file", path=str(tmp_path / "tv.pth")), "resnet18", loaded)
    assert_body_equals(loaded, reference)

    stored = safetensors.torch.load_file(tiny_model / "model.safetensors")
    loaded = body()
    load_base_weights(BaseWeights("file", path=str(tiny_model / "model.safetensors")), "resnet18", loaded)
    assert_body_equals(loaded, {k.removeprefix("body."): v for k, v in stored.items() if k.startswith("body.")})


def test_file_weights_that_do_not_fit_name_the_file_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "resnet34.safetensors"
    safetensors.torch.save_file(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(WeightsUnavailable, match=r"resnet34\.safetensors does not fit.*unexpected keys: layer1\.2"):
        load_base_weights(BaseWeights("file", path=str(path)), "resnet18", body())
    with pytest.raises(WeightsUnavailable, match=r"resnet34\.safetensors does not fit.*missing keys"):
        load_base_weights(BaseWeights("file", path=str(path)), "resnet50", body("resnet50"))
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    for name in ("garbage.pth", "absent.safetensors"):
        with pytest.raises(WeightsUnavailable, match=f"cannot read weights file .*{name}"):
            load_base_weights(BaseWeights("file", path=str(tmp_path / name)), "resnet18", body())


def test_store_model_as_base_transfers_body_and_normalisation(tiny_model: Path, tiny_dataset: Path,
                                                              tmp_path: Path) -> None:
    stored = safetensors.torch.load_file(tiny_model / "model.safetensors")
    loaded = body()
    base = load_base_weights(BaseWeights("store", path=str(tiny_model)), "resnet18", loaded)
    assert_body_equals(loaded, {k.removeprefix("body."): v for k, v in stored.items() if k.startswith("body.")})
    assert list(base.mean) == json.loads((tiny_model / "card.json").read_text())["normalization"]["mean"]

    cfg = FineTuneConfig(**{**TINY, "base": BaseWeights("store", path=str(tiny_model)), "freeze_epochs": 1})
    result = fine_tune(cfg, tiny_dataset, tmp_path / "second")
    assert result.card["base"] == {"kind": "store", "name": "DEFAULT", "path": str(tiny_model),
                                      "description": f"stored model {tiny_model}"}
    assert result.card["normalization"] == json.loads((tiny_model / "card.json").read_text())["normalization"]


def test_store_model_of_another_arch_or_task_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="is a resnet18 but this job fine-tunes a resnet34"):
        load_base_weights(BaseWeights("store", path=str(tiny_model)), "resnet34", body("resnet34"))
    other = tmp_path / "language_model"
    other.mkdir()
    card = json.loads((tiny_model / "card.json").read_text())
    (other / "card.json").write_text(json.dumps({**card, "task": "language_model"}))
    (other / "model.safetensors").write_bytes((tiny_model / "model.safetensors").read_bytes())
    with pytest.raises(WeightsUnavailable, match="'language_model' model"):
        load_base_weights(BaseWeights("store", path=str(other)), "resnet18", body())
    with pytest.raises(WeightsUnavailable, match="cannot use stored model"):
        load_base_weights(BaseWeights("store", path=str(tmp_path / "missing")), "resnet18", body())
