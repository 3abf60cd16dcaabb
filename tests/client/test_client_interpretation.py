"""score_labels(), explain() and the score-labels / explain CLI commands against a fake server."""

from __future__ import annotations

import json

import grpc
import pytest

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from fineserve_client import Client, FineserveError, Heatmap, LabelScores, overlay_path
from fineserve_client.cli import main


class FakeInterpretation(inference_pb2_grpc.InferenceServicer):
    """Scores each label by whether the image bytes contain it; the overlay is the image bytes reversed."""

    def __init__(self) -> None:
        self.requests: list[object] = []

    def ScoreLabels(self, request, context):
        self.requests.append(request)
        cut = request.threshold if request.HasField("threshold") else 0.5
        results = []
        for image in request.images:
            scores = {label: 0.9 if label.encode() in image.data else 0.1 for label in ("cat", "dog")}
            results.append(
                inference_pb2.LabelScores(
                    name=image.name,
                    scores=[inference_pb2.LabelScore(label=k, score=v) for k, v in scores.items()],
                    predicted=[k for k, v in scores.items() if v > cut],
                )
            )
        return inference_pb2.ScoreLabelsResponse(model=common_pb2.ModelRef(name="tags", version=3), results=results)

    def Explain(self, request, context):
        self.requests.append(request)
        if request.target == "bird":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown target 'bird'")
        return inference_pb2.ExplainResponse(
            model=common_pb2.ModelRef(name="tags", version=3),
            results=[
                inference_pb2.Heatmap(
                    name=image.name,
                    target=request.target or "cat",
                    grid_width=3,
                    grid_height=2,
                    grid=[0, 0.5, 1, 0.25, 0.75, 0],
                    overlay_png=image.data[::-1],
                )
                for image in request.images
            ],
        )


def test_score_labels_with_stored_and_given_threshold(serve, tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"a cat")
    servicer = FakeInterpretation()
    with Client(serve(servicer)) as client:
        stored = client.score_labels("tags", [path, b"cat and dog"], batch_size=1)
        given = client.score_labels("tags/3", [b"nothing"], threshold=0.05)
    assert stored == [
        LabelScores(str(path), {"cat": 0.9, "dog": 0.1}, ["cat"], "tags/3"),
        LabelScores("bytes[1]", {"cat": 0.9, "dog": 0.9}, ["cat", "dog"], "tags/3"),
    ]
    assert given[0].predicted == ["cat", "dog"]
    assert [r.HasField("threshold") for r in servicer.requests] == [False, False, True]
    assert servicer.requests[2].model == common_pb2.ModelRef(name="tags", version=3)


def test_explain_returns_grids_and_saves_overlays_next_to_inputs(serve, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"png bytes")
    with Client(serve(FakeInterpretation())) as client:
        results = client.explain("tags", [path, b"raw"], target="dog", save_overlays=True)
    assert results[0] == Heatmap(str(path), "dog", [[0, 0.5, 1], [0.25, 0.75, 0]], b"setyb gnp", "tags/3")
    assert overlay_path(path, "dog") == tmp_path / "photo.dog.gradcam.png"
    assert (tmp_path / "photo.dog.gradcam.png").read_bytes() == b"setyb gnp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.dog.gradcam.png", "photo.jpg"]
    assert results[1].save_overlay(tmp_path / "raw.png").read_bytes() == b"war"


def test_explain_errors_are_sdk_errors(serve):
    with Client(serve(FakeInterpretation())) as client, pytest.raises(FineserveError, match="bird"):
        client.explain("tags", [b"x"], target="bird")


def test_cli_explain_writes_overlays_and_score_labels_prints(serve, tmp_path, capsys):
    target = serve(FakeInterpretation())
    a, b = tmp_path / "a.png", tmp_path / "b.jpeg"
    a.write_bytes(b"AAA cat")
    b.write_bytes(b"BBB dog")
    assert main(["--target", target, "explain", "tags", str(a), str(b), "--class", "dog"]) == 0
    table = capsys.readouterr().out
    assert "a.dog.gradcam.png" in table and "b.dog.gradcam.png" in table
    assert (tmp_path / "a.dog.gradcam.png").read_bytes() == b"tac AAA"
    assert (tmp_path / "b.dog.gradcam.png").read_bytes() == b"god BBB"
    assert main(["--target", target, "--json", "score-labels", "tags", str(a), "--threshold", "0.05"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == [
        {"file": str(a), "model": "tags/3", "scores": {"cat": 0.9, "dog": 0.1}, "predicted": ["cat", "dog"]}
    ]
    assert main(["--target", target, "explain", "tags", str(a), "--class", "bird"]) == 4
