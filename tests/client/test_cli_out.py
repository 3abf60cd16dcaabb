"""--out on the commands that write files: explain's overlays go next to each input by default, or into --out."""

from __future__ import annotations

from pathlib import Path

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from fineserve_client.cli import main


class Overlays(inference_pb2_grpc.InferenceServicer):
    """Explain answers each image with its bytes reversed as the overlay."""

    def __init__(self) -> None:
        self.calls = 0

    def Explain(self, request, context):
        self.calls += 1
        return inference_pb2.ExplainResponse(
            model=common_pb2.ModelRef(name="pets", version=1),
            results=[inference_pb2.Heatmap(name=i.name, target="cat", grid_width=1, grid_height=1, grid=[1.0],
                                           overlay_png=i.data[::-1]) for i in request.images])


def _images(folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())
    return [str(folder / name) for name in names]


def test_explain_writes_into_out(serve, tmp_path, capsys) -> None:
    target = serve(Overlays())
    files = _images(tmp_path / "in", "a.jpg", "b.png")
    out = tmp_path / "maps" / "new"
    assert main(["--target", target, "explain", "pets", *files, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.cat.gradcam.png", "b.cat.gradcam.png"]
    assert (out / "a.cat.gradcam.png").read_bytes() == b"gpj.a"
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a.jpg", "b.png"]
    assert str(out / "b.cat.gradcam.png") in capsys.readouterr().out
    assert main(["--target", target, "explain", "pets", files[0]]) == 0  # default: next to the input
    assert (tmp_path / "in" / "a.cat.gradcam.png").read_bytes() == b"gpj.a"


def test_explain_refuses_two_inputs_for_one_overlay(serve, tmp_path, capsys) -> None:
    servicer = Overlays()
    files = _images(tmp_path / "x", "a.jpg") + _images(tmp_path / "y", "a.png")
    assert main(["--target", serve(servicer), "explain", "pets", *files, "--out", str(tmp_path / "o")]) == 2
    assert "would both write" in capsys.readouterr().err
    assert servicer.calls == 0 and not (tmp_path / "o").exists()


def test_every_command_that_writes_files_takes_out(capsys) -> None:
    for command in ("explain", "segment", "plot", "lr-find"):
        assert main([command, "--help"]) == 0
        assert "--out" in capsys.readouterr().out, command
