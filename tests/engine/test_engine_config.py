from __future__ import annotations

import json

import pytest

from worker.engine import BaseWeights, FineTuneConfig


def test_defaults_round_trip_through_json() -> None:
    cfg = FineTuneConfig()
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["base"] == {"kind": "torchvision", "name": "DEFAULT", "path": ""}
    assert data["lr"] == 2e-3 and data["freeze_epochs"] == 1 and data["precision"] == "auto"
    assert FineTuneConfig.from_dict(data) == cfg


def test_from_dict_fills_defaults_and_converts_ints_for_float_fields() -> None:
    cfg = FineTuneConfig.from_dict({"arch": "resnet34", "lr": 1, "base": {"kind": "none"}})
    assert cfg.arch == "resnet34" and cfg.base == BaseWeights("none") and cfg.image_size == 224
    assert isinstance(cfg.to_dict()["lr"], float)


def test_base_none_skips_the_frozen_phase() -> None:
    assert FineTuneConfig(base=BaseWeights("none"), freeze_epochs=2).effective_freeze_epochs == 0
    assert FineTuneConfig(freeze_epochs=2).effective_freeze_epochs == 2


@pytest.mark.parametrize(("data", "field"), [
    ({"arch": "vgg16"}, "arch"),
    ({"lr": -1.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr_mult": 0.5}, "lr_mult"),
    ({"pct_start": 1.0}, "pct_start"),
    ({"valid_pct": 0}, "valid_pct"),
    ({"batch_size": 1}, "batch_size"),
    ({"batch_size": 8.0}, "batch_size"),
    ({"epochs": True}, "epochs"),
    ({"image_size": 8}, "image_size"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"precision": "int8"}, "precision"),
    ({"precision": "fp16", "device": "cpu"}, "precision"),
    ({"device": "tpu"}, "device"),
    ({"flip": "yes"}, "flip"),
    ({"num_workers": -1}, "num_workers"),
    ({"seed": -1}, "seed"),
    ({"freeze_epochs": 0, "epochs": 0}, "epochs"),
    ({"base": {"kind": "none"}, "epochs": 0}, "epochs"),
    ({"base": {"kind": "hub"}}, "base.kind"),
    ({"base": {"kind": "torchvision", "name": "IMAGENET1K_V9"}}, "base.name"),
    ({"base": {"kind": "file"}}, "base.path"),
    ({"base": {"kind": "store", "path": 3}}, "base.path"),
])
def test_invalid_values_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid {field}:"):
        FineTuneConfig.from_dict(data)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown field\(s\) in config: learning_rate"):
        FineTuneConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"unknown field\(s\) in base: url"):
        FineTuneConfig.from_dict({"base": {"kind": "none", "url": "x"}})
    with pytest.raises(ValueError, match="invalid base: must be an object"):
        FineTuneConfig.from_dict({"base": "none"})
