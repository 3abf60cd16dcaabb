"""A job's interpretation through the SDK (typed values, the two plots) and the report command."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from fineserve.v1 import training_pb2, training_pb2_grpc
from fineserve_client.cli import main
from fineserve_client.report import interpretation_of, plot_confusion_matrix, plot_top_losses

PNG = b"\x89PNG\r\n\x1a\n"
CLASSES = ["cat", "dog", "fox"]


def job_with_interpretation() -> training_pb2.Job:
    job = training_pb2.Job(id="job-1", state=training_pb2.SUCCEEDED)
    job.result.interpretation.CopyFrom(training_pb2.Interpretation(
        task="image_classification", classes=CLASSES, confusion=[5, 1, 0, 2, 6, 0, 0, 3, 4], items=21,
        precision="fp32",
        per_class=[training_pb2.ClassMetrics(name=c, precision=0.7, recall=0.8, f_score=0.75, support=7)
                   for c in CLASSES],
        most_confused=[training_pb2.ConfusedPair(actual="fox", predicted="dog", count=3),
                       training_pb2.ConfusedPair(actual="dog", predicted="cat", count=2)],
        top_losses=[training_pb2.TopLoss(item=f"valid/{a}/{i}.png", actual=a, predicted=p, loss=3.0 - i / 2,
                                         probability=0.05 * (i + 1))
                    for i, (a, p) in enumerate([("fox", "dog"), ("dog", "cat"), ("cat", "dog")])]))
    return job


def write_images(root: Path) -> None:
    for i, (actual, shade) in enumerate([("fox", 40), ("dog", 120), ("cat", 200)]):
        (root / "valid" / actual).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (shade, 90, 255 - shade)).save(root / "valid" / actual / f"{i}.png")


def test_typed_access_to_the_matrix_pairs_and_losses() -> None:
    found = interpretation_of(job_with_interpretation())
    assert found.confusion == [[5, 1, 0], [2, 6, 0], [0, 3, 4]] and found.items == 21
    assert [(p.actual, p.predicted, p.count) for p in found.most_confused] == [("fox", "dog", 3), ("dog", "cat", 2)]
    assert found.top_losses[0].item == "valid/fox/0.png" and found.top_losses[0].loss == 3.0
    assert [m.name for m in found.per_class] == CLASSES and found.per_class[0].support == 7
    with pytest.raises(ValueError, match="no interpretation"):
        interpretation_of(training_pb2.Job(id="job-2"))


def test_plots_render_the_matrix_and_the_top_losses_images(tmp_path: Path) -> None:
    job = job_with_interpretation()
    plot_confusion_matrix(job, tmp_path / "cm.png")
    plot_confusion_matrix(job, tmp_path / "cm_norm.png", normalize=True)
    write_images(tmp_path / "data")
    plot_top_losses(job, tmp_path / "data", tmp_path / "losses.png")
    for name in ("cm.png", "cm_norm.png", "losses.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
    with pytest.raises(FileNotFoundError, match=r"valid/fox/0\.png"):
        plot_top_losses(job, tmp_path, tmp_path / "none.png")  # not the data set's folder
    del job.result.interpretation.top_losses[1:]
    job.result.interpretation.top_losses[0].item = "../fox/0.png"  # a file, but outside the folder given
    with pytest.raises(FileNotFoundError, match="not a file in"):
        plot_top_losses(job, tmp_path / "data" / "valid" / "dog", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


class Jobs(training_pb2_grpc.TrainingServicer):
    def GetJob(self, request, context):
        return job_with_interpretation() if request.id == "job-1" else training_pb2.Job(id=request.id)


def test_cli_report_prints_tables_and_writes_the_plots(serve, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = serve(Jobs())
    write_images(tmp_path / "data")
    assert main(["--target", target, "report", "job-1", "--out", str(tmp_path / "out"),
                 "--data", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr().out
    assert "CLASS" in printed and "most confused:" in printed and "valid/fox/0.png" in printed
    assert "fox     dog        3" in printed
    for name in ("confusion_matrix.png", "top_losses.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG)
    assert main(["--target", target, "report", "job-2"]) == 2
    assert "no interpretation" in capsys.readouterr().err
