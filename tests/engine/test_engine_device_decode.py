"""The device-decode path (decode_jpeg + a batched resize) on CPU tensors: the same pixels as PIL's path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worker.engine import InvalidImage
from worker.engine.images import decode_image, decode_jpegs, decode_tensors, resize_batch
from worker.engine.vision import explanations
from worker.engine.vision.classifier import ImageClassifier
from worker.engine.vision.explanations import explain
from worker.engine.vision.forward import forward_logits
from worker.engine.vision.resnet import ResNetClassifier
from worker.engine.vision.segmenter import ImageSegmenter
from worker.engine.vision.transforms import IMAGENET_MEAN, IMAGENET_STD, valid_transform
from worker.engine.vision.unet import ResNetUNet

CPU = torch.device("cpu")


def _photo(width: int = 40, height: int = 24, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    smooth = np.kron(rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8), np.ones((4, 4, 1)))
    return Image.fromarray(smooth.astype(np.uint8))


def _jpeg(image: Image.Image, orientation: int = 1) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpegs_decode_upright_as_pil_does(orientation: int) -> None:
    data = _jpeg(_photo(), orientation)
    (x,) = decode_jpegs([data], CPU)
    expected = torch.from_numpy(np.array(decode_image(data))).permute(2, 0, 1)
    assert x.dtype == torch.uint8 and x.shape == expected.shape
    assert (x.int() - expected.int()).abs().float().mean() < 2  # two libjpeg builds: rounding differs


def test_formats_keep_their_order_and_the_first_bad_image_is_named() -> None:
    png = io.BytesIO()
    _photo(seed=1).save(png, format="PNG")
    datas = [_jpeg(_photo(seed=0)), png.getvalue(), _jpeg(_photo(32, 32, seed=2))]
    shapes = [tuple(x.shape) for x in decode_tensors(datas, CPU)]
    assert shapes == [(3, 24, 40), (3, 24, 40), (3, 32, 32)]
    with pytest.raises(InvalidImage) as info:
        decode_tensors([datas[0], datas[2], datas[2][:-200], b"not an image"], CPU)
    assert info.value.index == 3  # every header is checked before any image is decoded
    with pytest.raises(InvalidImage) as info:
        decode_tensors([datas[1], datas[0], datas[2][:-200]], CPU)
    assert info.value.index == 2


def test_header_checks_run_before_decode_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.io

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(torchvision.io, "decode_jpeg", no_decoding)
    strip = _jpeg(Image.new("RGB", (8, 400)))
    with pytest.raises(InvalidImage, match="aspect ratio") as info:
        decode_jpegs([_jpeg(_photo()), strip], CPU)
    assert info.value.index == 1
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(InvalidImage, match="over the limit"):
        decode_tensors([_jpeg(_photo())], CPU)


def test_the_batched_resize_matches_the_pil_pipeline() -> None:
    datas = [_jpeg(_photo(64, 48, seed=i)) for i in range(3)] + [_jpeg(_photo(48, 80, seed=3))]
    batch = resize_batch(decode_tensors(datas, CPU), 32, 32, IMAGENET_MEAN, IMAGENET_STD)
    pil = valid_transform(32, IMAGENET_MEAN, IMAGENET_STD)
    expected = torch.stack([pil(decode_image(d)) for d in datas])
    assert batch.shape == expected.shape == (4, 3, 32, 32)
    assert (batch - expected).abs().mean() < 0.02


def _photos(shared_data: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((shared_data / "hymenoptera" / "val").rglob("*.jpg"))]



def _spread_classifier(datas: list[bytes]) -> ImageClassifier:
    """A ResNet-18 of deterministic random weights whose last layer is centred and scaled on these photos, so that
    the classes split them (an untrained net gives one class to every image, which would agree trivially)."""
    torch.manual_seed(0)
    net = ResNetClassifier("resnet18", 10).eval()
    card = {"classes": [f"c{i}" for i in range(10)], "image_size": 128, "arch": "resnet18",
            "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    model = ImageClassifier(net, card, CPU)
    logits = forward_logits(net, model.preprocess(datas), CPU)
    fc = net.head[-1]
    with torch.no_grad():
        scale = 2 / logits.std()
        fc.weight *= scale
        fc.bias.copy_(scale * (fc.bias - logits.mean(0)))
    return model


def test_served_answers_of_the_device_path_agree_with_pil_on_real_photos(shared_data: Path) -> None:
    """Classify's functions (preprocess, predict_tensor) with JPEGs decoded by decode_jpeg and resized as a
    batch (as on a CUDA replica, here on CPU tensors) against PIL's path: the same top-1 on >= 99 % of the
    153 validation photos (sizes up to 2592 px), probabilities within 0.02 (_spread_classifier's weights)."""
    datas = _photos(shared_data)
    model = _spread_classifier(datas)
    pil = model.predict_tensor(model.preprocess(datas))
    model.decode_device = CPU
    device = model.predict_tensor(model.preprocess(datas))
    assert len(datas) == 153 and len(set(pil.argmax(1).tolist())) >= 5
    assert (pil.argmax(1) == device.argmax(1)).float().mean() >= 0.99
    assert (pil - device).abs().max() <= 0.02


def test_segment_inputs_of_the_device_path_match_pil() -> None:
    card = {"classes": ["a", "b"], "input_size": [24, 32], "arch": "resnet18",
            "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    model = ImageSegmenter(ResNetUNet("resnet18", 2), card, CPU)
    png = io.BytesIO()
    _photo(48, 36, seed=5).save(png, format="PNG")
    datas = [_jpeg(_photo(64, 48)), png.getvalue(), _jpeg(_photo(40, 80, seed=1), orientation=6)]
    batch, sizes = model.preprocess(datas)
    model.decode_device = CPU
    on_device, device_sizes = model.preprocess(datas)
    assert sizes == device_sizes == [(48, 64), (36, 48), (40, 80)]
    assert on_device.shape == batch.shape == (3, 3, 24, 32) and (on_device - batch).abs().mean() < 0.02


def test_explain_decodes_as_classify_does_and_agrees_with_pil(shared_data: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Explain on a replica that decodes on the device (here CPU tensors): the same targets and probabilities as
    PIL's path within Classify's bounds, maps alike, and overlays drawn on the upright photo at its own size."""
    datas = _photos(shared_data)[::8]
    model = _spread_classifier(datas)
    pil = explain(model, datas)
    model.decode_device = CPU
    monkeypatch.setattr(explanations, "decode_all", None)  # the device path must not decode with PIL
    device = explain(model, datas)
    assert len(device) == len(pil) == 20
    assert sum(a.target == b.target for a, b in zip(pil, device, strict=True)) >= 19
    for a, b, data in zip(pil, device, datas, strict=True):
        if a.target == b.target:
            assert abs(a.probability - b.probability) <= 0.02
        assert a.layer == b.layer and (a.grid - b.grid).abs().mean() < 0.05
        sizes = {Image.open(io.BytesIO(e.overlay_png)).size for e in (a, b)}
        assert sizes == {decode_image(data).size}
