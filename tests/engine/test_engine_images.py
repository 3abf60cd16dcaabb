from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageFile

from worker.engine import DatasetError, FineTuneConfig, InvalidImage, fine_tune, images
from worker.engine.images import check_image, decode_all, decode_image
from worker.engine.vision import device_data, family
from worker.engine.vision.device_data import DeviceImages
from worker.engine.vision.transforms import train_transform

from .synthetic_images import TINY, image_bytes, stripes, write_class


def test_grey_and_alpha_images_decode_to_rgb() -> None:
    assert decode_image(image_bytes(stripes(True, 0))).mode == "RGB"
    rgba = Image.new("RGBA", (5, 4), (10, 20, 30, 0))
    decoded = decode_image(image_bytes(rgba))
    assert decoded.mode == "RGB" and decoded.size == (5, 4)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"definitely not an image", "cannot decode"),
    (image_bytes(stripes(True, 0))[:60], "cannot decode"),
])
def test_undecodable_bytes_raise_invalid_image_with_index(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidImage, match=reason) as info:
        decode_image(data, index=7)
    assert info.value.index == 7 and str(info.value).startswith("image 7: ")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, the engine refuses
@pytest.mark.parametrize("limit", [400, 100])  # 576 pixels: over the limit, and over PIL's own 2x bomb limit
def test_max_image_pixels_is_respected(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(InvalidImage, match="limit"):
        decode_image(image_bytes(stripes(True, 0)))


@pytest.mark.parametrize("threads", [1, 2])
def test_decode_all_keeps_order_and_names_the_first_bad_image(threads: int) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        good = [image_bytes(stripes(i % 2 == 0, i, size=8 + i)) for i in range(6)]
        assert decode_all(good, lambda image: image.size) == [(8 + i, 8 + i) for i in range(6)]
        bad = [*good[:3], b"not an image", good[4], b""]
        with pytest.raises(InvalidImage) as info:
            decode_all(bad, lambda image: image.size)
        assert info.value.index == 3
    finally:
        torch.set_num_threads(previous)


def test_a_strip_is_refused_from_its_header_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1x300000 PNG is a few hundred bytes and under any pixel limit, but a model's resize (short side to
    the input size) would make it input size x 67 million pixels: refused before a pixel is decoded."""
    strip = image_bytes(Image.new("L", (1, 300_000)))
    assert len(strip) < 2_000

    def no_decoding(image: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for check in (decode_image, check_image):
        with pytest.raises(InvalidImage, match=r"aspect ratio of 300000:1, over the limit of 20:1") as info:
            check(strip, 3)
        assert info.value.index == 3
    monkeypatch.undo()
    assert decode_image(image_bytes(Image.new("L", (20, 400)))).size == (20, 400)  # 20:1 is allowed


def test_a_data_set_decoded_onto_the_device_keeps_its_images_for_every_epoch(tmp_path: Path) -> None:
    """The CUDA jobs' path (images.decode_tensors, resized there, kept as uint8) run on the CPU: the squares
    match the PIL pipeline's, each epoch's order is its own and repeatable, and validation comes normalised."""
    write_class(tmp_path / "a", True, 7, 0)
    write_class(tmp_path / "b", False, 7, 50)
    items = [(path, label) for label, name in enumerate("ab") for path in sorted((tmp_path / name).iterdir())]
    train = DeviceImages(items, 20, 4, torch.device("cpu"), train=True, seed=3)
    pil = torch.stack([train_transform(16)(decode_image(path.read_bytes())) for path, _ in items])
    assert train.pixels.dtype == torch.uint8 and train.pixels.shape == pil.shape == (14, 3, 20, 20)
    assert (train.pixels.int() - pil.int()).abs().float().mean() < 3  # antialiased resizes of the same pixels
    train.set_epoch(1)
    first = list(train)
    assert len(first) == len(train) == 3 and all(x.shape == (4, 3, 20, 20) for x, _ in first)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, list(train), strict=True))
    train.set_epoch(2)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, list(train), strict=True))
    valid = DeviceImages(items, 16, 8, torch.device("cpu"), train=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    batches = list(valid)
    assert [len(y) for _, y in batches] == [8, 6] and batches[0][0].dtype == torch.float32
    assert torch.equal(torch.cat([y for _, y in batches]), torch.tensor([label for _, label in items]))
    assert batches[0][0].min() < -1 and batches[0][0].max() > 1


def test_the_device_path_checks_headers_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_class(tmp_path / "a", True, 3, 0)
    Image.new("L", (1, 300)).save(tmp_path / "a" / "strip.png")
    items = [(path, 0) for path in sorted((tmp_path / "a").iterdir())]
    for decoder in ("decode_image", "_decode_checked"):
        monkeypatch.setattr(images, decoder, lambda *args: pytest.fail("decoded"))
    with pytest.raises(DatasetError, match=r"strip\.png: 1x300 has an aspect ratio of 300:1"):
        DeviceImages(items, 16, 2, torch.device("cpu"), train=True)


def test_a_job_on_the_device_path_trains_from_the_kept_images(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA job's data path on the CPU (fits() says the data set fits): it trains and reports as usual."""
    write_class(tmp_path / "a", True, 10, 0)
    write_class(tmp_path / "b", False, 10, 50)
    monkeypatch.setattr(device_data, "fits", lambda n, side, device: True)
    monkeypatch.setattr(family, "fits", lambda n, side, device: True)
    built = []
    monkeypatch.setattr(family, "DeviceImages", lambda *a, **k: built.append(k["train"]) or DeviceImages(*a, **k))
    result = fine_tune(FineTuneConfig(**{**TINY, "device": "cpu"}), tmp_path, tmp_path / "out")
    assert built == [True, False] and result.epochs_trained == 1 and 0 <= result.metrics["accuracy"] <= 1
