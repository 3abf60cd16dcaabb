from __future__ import annotations

import json

import pytest

from fineserve_common.errors import InvalidArgument
from worker.engine import BaseWeights, FineTuneConfig, Stage


def test_defaults_round_trip_through_json() -> None:
    cfg = FineTuneConfig()
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["base"] == {"kind": "torchvision", "name": "DEFAULT", "path": ""}
    assert data["lr"] == 2e-3 and data["freeze_epochs"] == 1 and data["precision"] == "auto"
    assert FineTuneConfig.from_dict(data) == cfg


def test_an_unset_batch_size_is_chosen_by_the_device() -> None:
    """32 on a CPU, 128 on CUDA (issue 20's measurement), halved until the largest stage fits pixels_per_batch;
    a set batch_size is kept on every device."""
    assert FineTuneConfig().batch_size is None
    assert (FineTuneConfig().batch_for("cpu"), FineTuneConfig().batch_for("cuda")) == (32, 128)
    assert FineTuneConfig(batch_size=48).batch_for("cuda") == 48
    big = FineTuneConfig(stages=[Stage(1, 2, image_size=224), Stage(1, 0, image_size=2048)])
    assert (big.batch_for("cpu"), big.batch_for("cuda")) == (8, 8)  # 8 x 2048^2 = 2^25
    assert FineTuneConfig(image_size=1024).batch_for("cuda") == 32


def test_from_dict_fills_defaults_and_converts_ints_for_float_fields() -> None:
    cfg = FineTuneConfig.from_dict({"arch": "resnet34", "lr": 1, "base": {"kind": "none"}})
    assert cfg.arch == "resnet34" and cfg.base == BaseWeights("none") and cfg.image_size == 224
    assert isinstance(cfg.to_dict()["lr"], float)


def test_schedule_fields_round_trip_through_json() -> None:
    cfg = FineTuneConfig(stages=[Stage(1, 2, image_size=64), Stage(2, 0)], group_lrs=[1e-5, 1e-4, 1e-3],
                         label_smoothing=0.1, mixup_alpha=0.4, grad_clip=1.0, early_stopping_metric="accuracy",
                         auto_lr=True, final_div_factor=1e4)
    assert cfg.stages == (Stage(1, 2, image_size=64), Stage(2, 0)) and cfg.group_lrs == (1e-5, 1e-4, 1e-3)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["stages"][0] == {"epochs": 1, "freeze_to": 2, "image_size": 64, "lr": 0.0}
    assert FineTuneConfig.from_dict(data) == cfg
    assert Stage.from_dict(Stage(3, 1, 48, 0.5).to_dict()) == Stage(3, 1, 48, 0.5)


def test_defaults_of_the_1cycle_knobs() -> None:
    cfg = FineTuneConfig()
    assert (cfg.div_factor, cfg.final_div_factor, cfg.moms_max, cfg.moms_min) == (25.0, 1e5, 0.95, 0.85)
    assert (cfg.stages, cfg.group_lrs, cfg.auto_lr, cfg.early_stopping_metric) == ((), (), False, "")


def test_derived_stages_are_the_fine_tune_recipe() -> None:
    assert FineTuneConfig(lr=4e-3, freeze_epochs=2, epochs=3, image_size=64).resolved_stages() == (
        Stage(2, 2, 64, 4e-3), Stage(3, 0, 64, 2e-3))
    # a random body: no head-only stage before, so no halving (lr_spread: one rate for every group)
    assert FineTuneConfig(base=BaseWeights("none"), epochs=2, lr=4e-3).resolved_stages() == (Stage(2, 0, 224, 4e-3),)
    assert FineTuneConfig(freeze_epochs=1, epochs=0).resolved_stages() == (Stage(1, 2, 224, 2e-3),)


def test_explicit_stages_fill_in_size_and_lr_by_the_default_rule() -> None:
    stages = (Stage(1, 2), Stage(1, 1, 48), Stage(1, 0), Stage(1, 0, lr=0.1))
    cfg = FineTuneConfig(lr=4e-3, image_size=32, stages=stages)
    assert cfg.resolved_stages() == (Stage(1, 2, 32, 4e-3), Stage(1, 1, 48, 4e-3), Stage(1, 0, 32, 2e-3),
                                     Stage(1, 0, 32, 0.1))
    with_groups = FineTuneConfig(stages=(Stage(1, 1), Stage(1, 0)), group_lrs=(1e-4, 1e-3, 1e-2))
    assert [s.lr for s in with_groups.resolved_stages()] == [2e-3, 1e-2]


def test_stages_replace_the_epoch_fields() -> None:
    cfg = FineTuneConfig(base=BaseWeights("none"), freeze_epochs=0, epochs=0, stages=(Stage(2, 0),))
    assert cfg.resolved_stages() == (Stage(2, 0, 224, 2e-3),)


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
    ({"base": {"kind": "file"}}, "base.path"),
    ({"base": {"kind": "store", "path": 3}}, "base.path"),
    ({"div_factor": 0.5}, "div_factor"),
    ({"final_div_factor": 0}, "final_div_factor"),
    ({"moms_max": 1.0}, "moms_max"),
    ({"moms_min": 0.96}, "moms_min"),
    ({"group_lrs": [1e-3, 1e-2]}, "group_lrs"),
    ({"group_lrs": [1e-3, 0, 1e-2]}, r"group_lrs\[1\]"),
    ({"group_lrs": 0.1}, "group_lrs"),
    ({"stages": {"epochs": 1}}, "stages"),
    ({"stages": [{"epochs": 0, "freeze_to": 0}]}, "stage.epochs"),
    ({"stages": [{"epochs": 1, "freeze_to": -1}]}, "stage.freeze_to"),
    ({"stages": [{"epochs": 1, "freeze_to": 0, "image_size": 8}]}, "stage.image_size"),
    ({"stages": [{"epochs": 1, "freeze_to": 0, "lr": -1}]}, "stage.lr"),
    ({"stages": [{"epochs": 1, "freeze_to": 0}, {"epochs": 1, "freeze_to": 3}]}, r"stages\[1\].freeze_to"),
    ({"stages": [{"epochs": 1, "freeze_to": 0, "lr": 0.1}], "group_lrs": [1e-3, 1e-2, 0.1]}, r"stages\[0\].lr"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"mixup_alpha": -0.1}, "mixup_alpha"),
    ({"grad_clip": -1}, "grad_clip"),
    ({"early_stopping_metric": "f1"}, "early_stopping_metric"),
    ({"early_stopping_patience": 0}, "early_stopping_patience"),
    ({"early_stopping_min_delta": -0.1}, "early_stopping_min_delta"),
    ({"auto_lr": 1}, "auto_lr"),
])
def test_invalid_values_name_the_field(data: dict, field: str) -> None:
    # The bounds table's wording ("<field> must be ...", "<field>=<value> is outside ...") or the config's own.
    with pytest.raises(InvalidArgument, match=rf"^(invalid {field}:|{field}( must|=))"):
        FineTuneConfig.from_dict(data)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown field\(s\) in config: learning_rate"):
        FineTuneConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"unknown field\(s\) in base: url"):
        FineTuneConfig.from_dict({"base": {"kind": "none", "url": "x"}})
    with pytest.raises(ValueError, match="invalid base: must be an object"):
        FineTuneConfig.from_dict({"base": "none"})
    with pytest.raises(ValueError, match=r"unknown field\(s\) in stage: size"):
        FineTuneConfig.from_dict({"stages": [{"epochs": 1, "freeze_to": 0, "size": 64}]})
