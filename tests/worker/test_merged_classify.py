"""A replica request of several merged Classify (or ScoreLabels) calls: a bad image refuses its own call only."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from fineserve_common.answers import Refused
from worker.engine.vision.classifier import ImageClassifier
from worker.engine.vision.multi_label_classifier import MultiLabelClassifier
from worker.engine.vision.resnet import ResNetClassifier
from worker.engine.vision.transforms import IMAGENET_MEAN, IMAGENET_STD
from worker.interpretation import LabelCut
from worker.pass_merging import Call
from worker.serving import _preprocess_each, forward_calls

CPU = torch.device("cpu")


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


@pytest.mark.parametrize("decode_device", [None, torch.device("cpu")])
def test_score_labels_calls_share_classify_passes_each_with_its_own_threshold(
        decode_device: torch.device | None) -> None:
    """ScoreLabels' merged calls take Classify's path on a replica (_preprocess_each, then forward_calls, on the
    device-decode path too): one forward pass per model for every call, each call answered by its own option
    as the engine's score_labels / classify answers it alone; a bad image refuses its own call only."""
    torch.manual_seed(0)
    base = {"image_size": 32, "arch": "resnet18", "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    tags = MultiLabelClassifier(ResNetClassifier("resnet18", 3).eval(),
                                {**base, "classes": ["x", "y", "z"], "thresholds": [0.2, 0.5, 0.8]}, CPU)
    kinds = ImageClassifier(ResNetClassifier("resnet18", 2).eval(), {**base, "classes": ["a", "b"]}, CPU)
    tags.decode_device = kinds.decode_device = decode_device
    one, two, bad = [_jpeg(10)], [_jpeg(200), _jpeg(90)], [_jpeg(10), b"not an image"]
    asked = [(tags, one, LabelCut(None)), (kinds, two, 2), (tags, bad, LabelCut(0.5)), (tags, two, LabelCut(0.4))]
    decoded = [_preprocess_each(model, [images])[0] for model, images, _ in asked]
    assert isinstance(decoded[2], Refused) and decoded[2].message.startswith("image 1:")
    passes: list[int] = []
    answers = forward_calls([Call(model, x, option, 0) for (model, _, option), x in zip(asked, decoded, strict=True)
                             if not isinstance(x, Refused)], passes.append)
    assert sorted(passes) == [2, 3]  # one pass per model: the two tags calls together
    alone = [tags.score_labels(one), kinds.classify(two, 2), tags.score_labels(two, 0.4)]
    assert [[r.predicted for r in a] for a in (answers[0], answers[2])] == [
        [r.predicted for r in a] for a in (alone[0], alone[2])]
    for got, want in ((answers[0], alone[0]), (answers[2], alone[2])):
        for g, w in zip(got, want, strict=True):
            assert [label for label, _ in g.scores] == ["x", "y", "z"]
            assert max(abs(a - b) for (_, a), (_, b) in zip(g.scores, w.scores, strict=True)) < 0.02
    assert [[label for label, _ in r.top] for r in answers[1]] == [[label for label, _ in t] for t in alone[1]]
