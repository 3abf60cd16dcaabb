"""segment() and `fineserve segment` against a fake server: order, batching, saved masks and overlays."""

from __future__ import annotations

import io

from PIL import Image

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from fineserve_client import Client, Segmentation
from fineserve_client.cli import main

CLASSES = ["road", "sky"]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


class FakeSegmenter(inference_pb2_grpc.InferenceServicer):
    """A mask of the input's size: top half sky (1), bottom half road (0), with a red/blue palette."""

    def __init__(self) -> None:
        self.requests: list[inference_pb2.SegmentRequest] = []

    def Segment(self, request, context):
        self.requests.append(request)
        results = []
        for image in request.images:
            width, height = Image.open(io.BytesIO(image.data)).size
            mask = Image.new("P", (width, height), 0)
            mask.paste(1, (0, 0, width, height // 2))
            mask.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
            sky = (height // 2) / height
            results.append(
                inference_pb2.Segmentation(
                    name=image.name,
                    mask_png=_png(mask),
                    width=width,
                    height=height,
                    shares=[
                        inference_pb2.ClassShare(label="road", share=1 - sky),
                        inference_pb2.ClassShare(label="sky", share=sky),
                    ],
                    probabilities=[inference_pb2.ProbabilityMap(label=c, png=b"png") for c in CLASSES]
                    if request.include_probabilities
                    else [],
                )
            )
        return inference_pb2.SegmentResponse(
            model=common_pb2.ModelRef(name=request.model.name, version=request.model.version or 4),
            results=results,
            classes=CLASSES,
        )


def test_segment_saves_masks_and_overlays_in_order(serve, tmp_path):
    street = tmp_path / "street.png"
    street.write_bytes(_png(Image.new("RGB", (8, 6), (0, 255, 0))))
    other = _png(Image.new("RGB", (5, 4), (0, 0, 0)))
    servicer = FakeSegmenter()
    with Client(serve(servicer)) as client:
        results = client.segment(
            "roads/2", [street, other, street], probabilities=True, save_to=tmp_path / "out", batch_size=2
        )
    assert [len(r.images) for r in servicer.requests] == [2, 1]
    assert all(r.include_probabilities and r.model.version == 2 for r in servicer.requests)
    assert [(r.name, r.width, r.height) for r in results] == [
        (str(street), 8, 6),
        ("bytes[1]", 5, 4),
        (str(street), 8, 6),
    ]
    first = results[0]
    assert isinstance(first, Segmentation) and first.model == "roads/2" and first.classes == CLASSES
    assert first.top(1) == [("road", 0.5)] and set(first.probabilities) == set(CLASSES)
    mask = Image.open(tmp_path / "out" / "street.mask.png")
    assert mask.size == (8, 6) and mask.getpixel((0, 0)) == 1 and mask.getpixel((0, 5)) == 0
    overlay = Image.open(tmp_path / "out" / "street.overlay.png").convert("RGB")
    assert overlay.size == (8, 6)
    assert overlay.getpixel((0, 0)) == (0, 127, 127)  # green image, blue (sky) mask, half each
    assert overlay.getpixel((0, 5)) == (127, 127, 0)  # red (road)
    assert (tmp_path / "out" / "bytes[1].mask.png").is_file()


def test_cli_segment_prints_largest_classes_and_writes_files(serve, tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(_png(Image.new("RGB", (4, 4))))
    target = serve(FakeSegmenter())
    assert main(["--target", target, "segment", "roads", str(image), "--out", str(tmp_path / "seg"), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "4x4" in out and "road 50.0%" in out and "sky" not in out.split("\n")[1]
    assert (tmp_path / "seg" / "a.mask.png").is_file() and (tmp_path / "seg" / "a.overlay.png").is_file()
