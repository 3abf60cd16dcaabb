"""The fineserve command, called as main([...]) against fake servers."""

from __future__ import annotations

import json

from fineserve.v1 import training_pb2, training_pb2_grpc
from fineserve_client.cli import main


def test_classify_prints_an_aligned_table(serve, tmp_path, capsys, inference_servicer):
    files = []
    for name, data in (("cat.jpg", b"cat"), ("a-much-longer-name.jpg", b"dog")):
        path = tmp_path / name
        path.write_bytes(data)
        files.append(str(path))
    target = serve(inference_servicer)
    assert main(["--target", target, "classify", "pets/2", *files, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FILE", "LABEL", "PROBABILITY", "OTHERS"]
    assert lines[1].split() == [files[0], "cat", "0.7500", "other", "0.2500"]
    assert lines[2].split() == [files[1], "dog", "0.7500", "other", "0.2500"]
    column = lines[0].index("LABEL")
    assert lines[1][column:].startswith("cat") and lines[2][column:].startswith("dog")


def test_classify_json(serve, tmp_path, capsys, inference_servicer):
    path = tmp_path / "x.png"
    path.write_bytes(b"bird")
    assert main(["classify", "pets", str(path), "--json", "--target", serve(inference_servicer)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {
            "file": str(path),
            "model": "pets/7",
            "top": [{"label": "bird", "probability": 0.75}, {"label": "other", "probability": 0.25}],
        }
    ]


def test_not_found_exits_3(serve, capsys, monkeypatch, models_servicer):
    monkeypatch.setenv("FINESERVE_TARGET", serve(models_servicer))
    assert main(["model", "nope/1"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: NOT_FOUND: model nope not found")


def test_model_says_where_it_is_loaded(serve, capsys, models_servicer):
    target = serve(models_servicer)
    assert main(["--target", target, "model", "pets"]) == 0
    assert "loaded on 2 replica(s)" in capsys.readouterr().out
    assert main(["--target", target, "model", "pets/1"]) == 0
    assert "not loaded (the next call loads it)" in capsys.readouterr().out


def test_unavailable_exits_5(capsys):
    assert main(["--target", "127.0.0.1:1", "--timeout", "5", "jobs"]) == 5
    assert capsys.readouterr().err.startswith("error: UNAVAILABLE: ")


def test_bad_base_exits_2(capsys):
    assert (
        main(["--target", "127.0.0.1:1", "train", "--dataset", "ds-1", "--model", "m", "--base", "hub:x"])
        == 2
    )
    assert "unknown base" in capsys.readouterr().err


class Jobs(training_pb2_grpc.TrainingServicer):
    def __init__(self, final=training_pb2.SUCCEEDED):
        self.final = final

    def CreateFineTuneJob(self, request, context):
        return training_pb2.Job(id="job-9", state=training_pb2.QUEUED, request=request)

    def WatchJob(self, request, context):
        yield training_pb2.JobEvent(
            job_id=request.id, sequence=1, state=training_pb2.StateChange(state=self.final)
        )

    def GetJob(self, request, context):
        return training_pb2.Job(id=request.id, state=self.final, error="boom" if self.final != 3 else "")

    def ListJobs(self, request, context):
        return training_pb2.ListJobsResponse(jobs=[training_pb2.Job(id="job-9", state=training_pb2.RUNNING),
                                                   training_pb2.Job(id="job-10", state=training_pb2.QUEUED,
                                                                    queue_position=2)])


def test_train_no_wait_and_jobs_table(serve, capsys):
    target = serve(Jobs())
    assert (
        main(
            [
                "--target",
                target,
                "train",
                "--dataset",
                "ds-1",
                "--model",
                "pets",
                "--epochs",
                "2",
                "--no-wait",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == "job-9 QUEUED\n"
    assert main(["--target", target, "jobs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["ID", "STATE"] and out[1].split()[:2] == ["job-9", "RUNNING"]
    assert "queued, #2 in line" in out[2]


def test_train_asks_for_data_parallel_workers(serve, capsys):
    target = serve(Jobs())
    args = ["--target", target, "--json", "train", "--dataset", "ds-1", "--model", "pets", "--no-wait"]
    assert main([*args, "--workers", "2", "--cpus-per-worker", "1"]) == 0
    resources = json.loads(capsys.readouterr().out)["request"]["resources"]
    assert resources == {"workers": 2, "cpus_per_worker": 1.0}
    assert main(args) == 0
    assert "resources" not in json.loads(capsys.readouterr().out)["request"]


def test_train_waits_and_fails_with_exit_6(serve, capsys):
    target = serve(Jobs(final=training_pb2.FAILED))
    assert main(["--target", target, "--json", "train", "--dataset", "ds-1", "--model", "pets"]) == 6
    captured = capsys.readouterr()
    assert json.loads(captured.out)["state"] == "FAILED"
    assert "error: job job-9 FAILED: boom" in captured.err


def test_watch_succeeded(serve, capsys):
    assert main(["--target", serve(Jobs()), "watch", "job-9"]) == 0
    out = capsys.readouterr().out
    assert "job job-9 SUCCEEDED" in out and "state:" in out
