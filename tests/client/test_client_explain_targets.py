"""Explain's overlays are named by target (a second class's overlay does not overwrite the first's), and the
answer's probability, layer and warning reach the SDK's Heatmap."""

from __future__ import annotations

from pathlib import Path

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from fineserve_client import Client
from fineserve_client.cli import main
from fineserve_client.interpretation import overlay_path


class TargetedExplain(inference_pb2_grpc.InferenceServicer):
    """The overlay is the target's name; the top prediction is "cat"."""

    def Explain(self, request, context):
        target = request.target or "cat"
        return inference_pb2.ExplainResponse(model=common_pb2.ModelRef(name="pets", version=1), results=[
            inference_pb2.Heatmap(name=image.name, target=target, grid_width=1, grid_height=1, grid=[1.0],
                                  overlay_png=target.encode(), probability=0.25, layer="layer2",
                                  warning="coarse" if target == "cat" else "")
            for image in request.images])


def test_two_targets_give_two_overlay_files(serve, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"jpeg")
    with Client(serve(TargetedExplain())) as client:
        dog = client.explain("pets", [photo], target="dog", save_overlays=True)[0]
        cat = client.explain("pets", [photo], save_overlays=True)[0]
    assert (tmp_path / "photo.dog.gradcam.png").read_bytes() == b"dog"
    assert (tmp_path / "photo.cat.gradcam.png").read_bytes() == b"cat"
    assert (dog.probability, dog.layer, dog.warning, cat.warning) == (0.25, "layer2", "", "coarse")
    assert overlay_path("a/x.png", "tabby cat/1") == Path("a/x.tabby_cat_1.gradcam.png")  # a safe file name


def test_cli_explains_two_classes_into_two_files(serve, tmp_path: Path) -> None:
    target = serve(TargetedExplain())
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"png")
    for name in ("dog", "fox"):
        assert main(["--target", target, "explain", "pets", str(photo), "--class", name]) == 0
    assert main(["--target", target, "explain", "pets", str(photo), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "photo.dog.gradcam.png").read_bytes() == b"dog"
    assert (tmp_path / "photo.fox.gradcam.png").read_bytes() == b"fox"
    assert (tmp_path / "out" / "photo.cat.gradcam.png").read_bytes() == b"cat"
