from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageFile

from worker.engine import InvalidImage
from worker.engine.images import check_image, decode_all, decode_image

from .synthetic_images import image_bytes, stripes


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
