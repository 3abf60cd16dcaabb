"""The fineserve command against the real server: --set values reach the job, and each outcome has its exit status
(a job that fails 6, NOT_FOUND 3, the door's refusal 4, TLS against the plaintext server 5)."""

from __future__ import annotations

import json

from fineserve.v1 import datasets_pb2
from fineserve_client.cli import main
from harness.launcher import ServerProcess


def test_cli_outcomes_end_to_end(server: ServerProcess, mnist_dataset: datasets_pb2.Dataset, capsys) -> None:
    target = ["--target", server.target]
    # resnet34's ImageNet weights are not in the session's offline TORCH_HOME: the job fails while it starts
    assert main([*target, "train", "--dataset", mnist_dataset.id, "--model", "cli-fails", "--arch", "resnet34",
                 "--base", "torchvision:IMAGENET1K_V1", "--set", "image_size=32", "--set", "label_smoothing=0.1",
                 "--set", "early_stopping.metric=valid_loss"]) == 6
    err = capsys.readouterr().err
    assert "FAILED" in err and "ResNet34_Weights.IMAGENET1K_V1" in err
    assert main([*target, "--json", "jobs", "--model", "cli-fails"]) == 0
    hyper = json.loads(capsys.readouterr().out)[0]["request"]["hyperparameters"]
    assert hyper == {"image_size": 32, "label_smoothing": 0.1, "early_stopping": {"metric": "valid_loss",
                                                                                   "patience": 3}}

    assert main([*target, "model", "cli-no-such-model"]) == 3
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main([*target, "train", "--dataset", mnist_dataset.id, "--model", "m", "--task", "segmentation",
                 "--no-wait"]) == 4
    assert "needs a IMAGE_MASKS dataset" in capsys.readouterr().err
    assert main([*target, "--tls", "jobs"]) == 5
    assert f"the server at {server.target} does not speak TLS" in capsys.readouterr().err
