"""The fineserve command refuses a bad command line before any call (exit 2), with "did you mean" for names and the
bound for numbers; every Hyperparameters field is settable (flags and --set) and reaches the request typed; what a
request makes meaningless is warned of."""

from __future__ import annotations

import json

import pytest

from fineserve.v1 import training_pb2, training_pb2_grpc
from fineserve_client.cli import main
from fineserve_client.cli.hyperparameters import KEYS


class Recorder(training_pb2_grpc.TrainingServicer):
    """Takes every job request and answers QUEUED; ``requests`` shows what reached the server."""

    def __init__(self) -> None:
        self.requests: list[object] = []

    def CreateFineTuneJob(self, request, context):
        self.requests.append(request)
        return training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=request)

    def FindLearningRate(self, request, context):
        self.requests.append(request)
        return training_pb2.Job(id="job-2", state=training_pb2.QUEUED)

    def WatchJob(self, request, context):
        yield training_pb2.JobEvent(job_id=request.id, sequence=1,
                                    state=training_pb2.StateChange(state=training_pb2.SUCCEEDED))

    def GetJob(self, request, context):
        return training_pb2.Job(id=request.id, state=training_pb2.SUCCEEDED)

    def ListJobs(self, request, context):
        self.requests.append(request)
        return training_pb2.ListJobsResponse()


@pytest.fixture
def recorder(serve):
    servicer = Recorder()
    return servicer, serve(servicer)


def _train(target: str, *args: str) -> list[str]:
    return ["--target", target, "--json", "train", "--dataset", "ds-1", "--model", "m", "--no-wait", *args]


REFUSED = [
    (["--task", "IMAGE_CLASIFICATION"], "unknown task 'IMAGE_CLASIFICATION'; did you mean image_classification"),
    (["--arch", "resnet51"], "unknown arch 'resnet51' for image_classification; did you mean resnet50"),
    (["--task", "tabular", "--arch", "resnet18", "--option", "target=y"], "(choices: tabular_mlp)"),
    (["--precision", "bf61"], "unknown precision 'bf61'; did you mean bf16?"),
    (["--base", "imagnet"], "unknown base 'imagnet'; did you mean imagenet?"),
    (["--set", "lr_mul=3"], "unknown hyperparameter 'lr_mul'; did you mean lr_mult?"),
    (["--set", "early_stopping=accuracy"], "early_stopping has parts: --set early_stopping.metric"),
    (["--set", "early_stopping.metric=valid_los"], "did you mean valid_loss?"),
    (["--set", "lr=20"], "--set lr: lr=20 is outside (0, 10]"),
    (["--lr", "20"], "--lr: lr=20 is outside (0, 10]"),
    (["--set", "batch_size=1"], "batch_size=1 is outside [2, 65536]"),
    (["--set", "seed=x"], "--set seed must be an integer, got 'x'"),
    (["--set", "flip=maybe"], "--set flip must be true or false"),
    (["--set", "stages=1:2,3"], "stage '3' must be EPOCHS:FREEZE_TO[:IMAGE_SIZE[:LR]]"),
    (["--set", "group_lrs=1e-3,1e-2"], "needs one rate per layer group (3)"),
    (["--set", "moms_min=0.99"], "must not exceed moms_max"),
    (["--set", "image_size=2048", "--set", "batch_size=64"], "batch_size x image_size^2"),
    (["--epochs", "2", "--set", "epochs=3"], "--set epochs: epochs is already set by --epochs"),
    (["--set", "void_code=Void"], "--set void_code does not apply to image_classification jobs"),
    (["--task", "tabular", "--set", "flip=false", "--option", "target=y"], "--set flip does not apply to tabular"),
    (["--task", "language_model", "--base", "none", "--image-size", "64"], "--image-size does not apply to"),
    (["--task", "tabular"], "tabular jobs need --option target=COLUMN"),
    (["--task", "tabular", "--option", "targte=y"], "unknown --option of tabular jobs 'targte'; did you mean target?"),
    (["--option", "bptt=30"], "--option applies to"),
    (["--task", "text_classification"], "text_classification jobs need --base"),
    (["--task", "text_classification", "--base", "file:/w.safetensors"], "does not apply to text_classification"),
    (["--task", "language_model", "--base", "none", "--option", "n_layers=9"], "n_layers=9 is outside [1, 8]"),
    (["--task", "tabular", "--option", "target=y", "--workers", "2"], "tabular jobs run on one worker"),
    (["--workers", "65"], "--workers: workers=65 is outside [0, 64]"),
    (["--workers", "2", "--auto-lr"], "--auto-lr runs the LR range test on one worker"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED)
def test_a_bad_command_line_exits_2_before_any_call(recorder, capsys, args, message) -> None:
    servicer, target = recorder
    assert main(_train(target, *args)) == 2
    assert message in capsys.readouterr().err
    assert servicer.requests == []


def test_choices_of_other_commands_suggest(recorder, capsys) -> None:
    servicer, target = recorder
    assert main(["--target", target, "jobs", "--state", "runing"]) == 2
    assert "did you mean running?" in capsys.readouterr().err
    assert main(["--target", target, "upload", "x", "--layout", "image_folder"]) == 2
    assert "did you mean image_folders?" in capsys.readouterr().err
    assert main(["--target", target, "jobs", "--state", "Running"]) == 0
    assert servicer.requests[0].states == [training_pb2.RUNNING]


SETTINGS = {
    "lr_mult": ("50", 50.0), "weight_decay": ("0.05", 0.05), "pct_start": ("0.3", 0.3), "valid_pct": ("0.25", 0.25),
    "seed": ("7", "7"), "flip": ("false", False), "div_factor": ("10", 10.0), "final_div_factor": ("1e4", 1e4),
    "moms_max": ("0.9", 0.9), "moms_min": ("0.8", 0.8), "group_lrs": ("1e-5,1e-4,1e-3", [1e-5, 1e-4, 1e-3]),
    "stages": ("1:2,2:1:128:0.001",
               [{"epochs": 1, "freeze_to": 2}, {"epochs": 2, "freeze_to": 1, "image_size": 128, "lr": 0.001}]),
    "label_smoothing": ("0.1", 0.1), "mixup_alpha": ("0.4", 0.4), "grad_clip": ("1", 1.0),
    "early_stopping.metric": ("valid_loss", None), "early_stopping.patience": ("2", None),
    "early_stopping.min_delta": ("0.01", None), "precision": ("BF16", "BF16"), "image_size": ("64", 64),
}


def test_every_setting_reaches_the_request_typed(recorder, capsys) -> None:
    _, target = recorder
    sets = [arg for key, (text, _) in SETTINGS.items() for arg in ("--set", f"{key}={text}")]
    assert main(_train(target, *sets, "--epochs", "2")) == 0
    sent = json.loads(capsys.readouterr().out)["request"]["hyperparameters"]
    expected = {key: value for key, (_, value) in SETTINGS.items() if value is not None}
    assert sent == {**expected, "epochs": 2, "early_stopping": {"metric": "valid_loss", "patience": 2,
                                                                "min_delta": 0.01}}


def test_settings_of_each_family(recorder, capsys) -> None:
    servicer, target = recorder
    assert main(_train(target, "--task", "multi-label-classification", "--set", "threshold=0.4",
                       "--fbeta-beta", "1")) == 0
    assert main(_train(target, "--task", "segmentation", "--set", "void_code=Sky", "--arch", "ResNet34")) == 0
    assert main(_train(target, "--task", "language_model", "--base", "none", "--option", "bptt=30")) == 0
    assert main(_train(target, "--task", "tabular", "--option", "target=y", "--set", "precision=fp32")) == 0
    assert main(["--target", target, "lr-find", "--dataset", "ds-1", "--set", "lr_mult=10", "--batch-size",
                 "8"]) == 0
    multi, seg, text, tab, find = servicer.requests
    assert (multi.hyperparameters.threshold, multi.hyperparameters.fbeta_beta) == (0.4, 1.0)
    assert (seg.hyperparameters.void_code, seg.arch) == ("Sky", "resnet34")
    assert text.text.bptt == 30 and text.base.random_init
    assert tab.tabular.target == "y" and tab.hyperparameters.precision == training_pb2.FP32
    assert (find.hyperparameters.lr_mult, find.hyperparameters.batch_size) == (10.0, 8)


def test_lr_find_checks_its_sweep_and_warns_of_what_it_does_not_use(recorder, capsys) -> None:
    servicer, target = recorder
    find = ["--target", target, "lr-find", "--dataset", "ds-1"]
    assert main([*find, "--start-lr", "1", "--end-lr", "0.1"]) == 2
    assert "--start-lr 1 must be below --end-lr 0.1" in capsys.readouterr().err
    assert main([*find, "--num-batches", "0"]) == 2
    assert "--num-batches: num_batches=0 is outside [1, 10000]" in capsys.readouterr().err
    assert servicer.requests == []
    assert main([*find, "--start-lr", "1e-6", "--end-lr", "1", "--freeze-to", "1", "--set", "epochs=3",
                 "--set", "freeze_epochs=0"]) == 0
    err = capsys.readouterr().err
    assert "warning: --set epochs is ignored by lr-find" in err and "freeze_epochs" not in err
    sent = servicer.requests[0]
    assert (sent.start_lr, sent.end_lr, sent.freeze_to, sent.num_batches) == (1e-6, 1.0, 1, 100)


def test_set_names_every_hyperparameters_field() -> None:
    fields = set(training_pb2.Hyperparameters.DESCRIPTOR.fields_by_name)
    assert {k.partition(".")[0] for k in KEYS} == fields


WARNED = [
    (["--base", "none", "--freeze-epochs", "2"], "--freeze-epochs is ignored with --base none"),
    (["--lr", "1e-3", "--auto-lr"], "--auto-lr is ignored: --lr sets the learning rate"),
    (["--set", "stages=1:0", "--epochs", "2"], "--epochs is ignored: --set stages replaces"),
    (["--set", "threshold=0.3"], "--set threshold is ignored: it applies to multi_label_classification only"),
    (["--set", "early_stopping.patience=2"],
     "--set early_stopping.patience is ignored: early stopping is off without early_stopping.metric"),
    (["--task", "collaborative_filtering", "--base", "none"], "--base is ignored: collaborative_filtering models"),
]


@pytest.mark.parametrize(("args", "warning"), WARNED)
def test_what_a_request_makes_meaningless_is_warned_of(recorder, capsys, args, warning) -> None:
    servicer, target = recorder
    assert main(_train(target, *args)) == 0
    assert f"warning: {warning}" in capsys.readouterr().err
    assert len(servicer.requests) == 1


def test_a_plain_request_warns_of_nothing(recorder, capsys) -> None:
    _, target = recorder
    assert main(_train(target, "--epochs", "2", "--lr", "1e-3", "--set", "early_stopping.metric=accuracy")) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    # the config's default patience goes with a metric given alone (the door refuses an unset one)
    assert json.loads(captured.out)["request"]["hyperparameters"]["early_stopping"] == {"metric": "accuracy",
                                                                                         "patience": 3}
