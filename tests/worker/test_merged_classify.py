"""A replica request of several merged Classify calls: a bad image refuses its own call only."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from fineserve_common.answers import Refused
from worker.engine.vision.classifier import ImageClassifier
from worker.engine.vision.resnet import ResNetClassifier
from worker.engine.vision.transforms import IMAGENET_MEAN, IMAGENET_STD
from worker.serving import _preprocess_each


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (shade, 100, 200)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("decode_device", [None, torch.device("cpu")])
def test_a_bad_image_refuses_its_own_call_only(decode_device: torch.device | None) -> None:
    card = {"classes": ["a", "b"], "image_size": 32, "arch": "resnet18",
            "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    model = ImageClassifier(ResNetClassifier("resnet18", 2).eval(), card, torch.device("cpu"))
    model.decode_device = decode_device
    good, bad = _jpeg(10), b"not an image"
    out = _preprocess_each(model, [[good], [good, bad], [good, good]])
    assert [tuple(x.shape) for x in (out[0], out[2])] == [(1, 3, 32, 32), (2, 3, 32, 32)]
    assert isinstance(out[1], Refused) and out[1].message.startswith("image 1: cannot decode")
