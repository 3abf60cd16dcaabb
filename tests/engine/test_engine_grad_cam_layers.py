"""Grad-CAM that can point on small inputs (issue 25): an earlier stage when layer4's grid is under 4x4, the
target's probability as Classify serves it, and a perceptual colour map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from worker.engine import ImageClassifier, explain
from worker.engine.vision.explanations import MIN_GRID, cam_layer, stage_side
from worker.engine.vision.heatmaps import COLORMAP
from worker.engine.vision.resnet import ResNetClassifier

from .synthetic_images import image_bytes, stripes


@pytest.mark.parametrize("hw", [(32, 32), (23, 57), (30, 40), (224, 224), (97, 130)])
def test_stage_sides_are_the_bodys_real_grid_sizes(hw: tuple[int, int]) -> None:
    body = ResNetClassifier("resnet18", 2).body.eval()
    shapes = {}
    hooks = [getattr(body, name).register_forward_hook(
        lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape[-2:]))) for name in ("layer2", "layer3",
                                                                                                   "layer4")]
    with torch.no_grad():
        body(torch.zeros(1, 3, *hw))
    for hook in hooks:
        hook.remove()
    assert {name: (stage_side(hw[0], int(name[-1])), stage_side(hw[1], int(name[-1]))) for name in shapes} == shapes


def test_small_inputs_fall_back_to_an_earlier_stage_and_warn_below_4x4() -> None:
    body = ResNetClassifier("resnet18", 2).body
    assert cam_layer(body, 224, 224)[0::2] == ("layer4", "")  # 7x7
    assert cam_layer(body, 64, 64)[0::2] == ("layer3", "")  # layer4 2x2, layer3 4x4
    assert cam_layer(body, 32, 48)[0::2] == ("layer2", "")  # layer3 2x3, layer2 4x6
    name, module, warning = cam_layer(body, 16, 16)
    assert name == "layer2" and module is body.layer2 and "2x2" in warning and "image_size" in warning


def test_a_32px_model_explains_on_a_4x4_grid_with_classifys_probability(tiny_model: Path) -> None:
    model = ImageClassifier.load(tiny_model, device="cpu")
    assert model.card["image_size"] == 32
    images = [image_bytes(stripes(v, seed)) for v, seed in ((True, 3), (False, 4), (True, 5))]
    probs = model.predict_proba(images)
    for target in ("", "horizontal", "vertical"):
        for i, e in enumerate(explain(model, images, target)):
            assert e.layer == "layer2" and e.warning == "" and min(e.grid.shape) >= MIN_GRID
            assert e.probability == pytest.approx(float(probs[i, model.classes.index(e.target)]), abs=1e-6)
            if not target:
                assert e.target == model.classes[int(probs[i].argmax())]


def test_colour_map_lightness_rises_with_heat() -> None:
    """Perceptual: CIE L* of the map's colours never falls as heat rises (a jet or rainbow map's does)."""
    linear = np.where(COLORMAP / 255 <= 0.04045, COLORMAP / 255 / 12.92, ((COLORMAP / 255 + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    lightness = np.where(luminance > (6 / 29) ** 3, 116 * np.cbrt(luminance) - 16, luminance * (29 / 3) ** 3)
    assert np.all(np.diff(lightness) >= -0.5) and lightness[-1] - lightness[0] > 60
