"""create_fine_tune_job: base parsing, hyperparameters, paging of list_jobs."""

from __future__ import annotations

import pytest

from fineserve.v1 import common_pb2, training_pb2, training_pb2_grpc
from fineserve_client import Client, parse_base


class RecordingTraining(training_pb2_grpc.TrainingServicer):
    def __init__(self) -> None:
        self.requests: list = []

    def CreateFineTuneJob(self, request, context):
        self.requests.append(request)
        return training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=request)

    def ListJobs(self, request, context):
        self.requests.append(request)
        page = int(request.page.page_token or 0)
        jobs = [training_pb2.Job(id=f"job-{page * 2 + i}") for i in range(2)]
        return training_pb2.ListJobsResponse(jobs=jobs, next_page_token=str(page + 1) if page < 2 else "")


@pytest.mark.parametrize(
    ("spec", "field", "check"),
    [
        ("imagenet", "torchvision", lambda b: b.torchvision.weights == ""),
        ("torchvision", "torchvision", lambda b: b.torchvision.weights == ""),
        ("ImageNet", "torchvision", lambda b: b.torchvision.weights == ""),
        ("torchvision:IMAGENET1K_V1", "torchvision", lambda b: b.torchvision.weights == "IMAGENET1K_V1"),
        ("file:/w/resnet.safetensors", "weights_file", lambda b: b.weights_file == "/w/resnet.safetensors"),
        ("file:///w/r.safetensors", "weights_file", lambda b: b.weights_file == "/w/r.safetensors"),
        (
            "model:pets",
            "stored_model",
            lambda b: (b.stored_model.name, b.stored_model.version) == ("pets", 0),
        ),
        (
            "model:pets/3",
            "stored_model",
            lambda b: (b.stored_model.name, b.stored_model.version) == ("pets", 3),
        ),
        ("none", "random_init", lambda b: b.random_init),
        ("random", "random_init", lambda b: b.random_init),
    ],
)
def test_parse_base_forms(spec, field, check):
    base = parse_base(spec)
    assert base.WhichOneof("source") == field
    assert check(base)


@pytest.mark.parametrize(
    "spec",
    ["", "resnet18", "torchvision:", "file:", "model:", "model:pets/x", "model:/2", "hub:foo", "imagenet:x"],
)
def test_parse_base_rejects_unknown(spec):
    with pytest.raises(ValueError):
        parse_base(spec)


def test_create_job_sends_only_given_fields(serve):
    servicer = RecordingTraining()
    with Client(serve(servicer)) as client:
        job = client.create_fine_tune_job(
            "ds-1",
            "pets",
            arch="resnet34",
            base="model:pets/2",
            epochs=4,
            lr=1e-3,
            precision="bf16",
            weight_decay=0.05,
            flip=False,
            request_id="abc",
            resources={"cpu_only": True},
        )
    assert job.id == "job-1"
    (req,) = servicer.requests
    assert (req.dataset_id, req.model_name, req.arch, req.request_id) == ("ds-1", "pets", "resnet34", "abc")
    assert req.task == training_pb2.IMAGE_CLASSIFICATION
    assert req.base.stored_model == common_pb2.ModelRef(name="pets", version=2)
    h = req.hyperparameters
    assert (h.epochs, h.lr, h.weight_decay, h.flip, h.precision) == (4, 1e-3, 0.05, False, training_pb2.BF16)
    for name in ("freeze_epochs", "batch_size", "image_size", "lr_mult", "pct_start", "valid_pct", "seed"):
        assert not h.HasField(name), name
    assert h.HasField("flip") and h.HasField("epochs")
    assert req.resources.cpu_only


def test_create_job_defaults_to_imagenet_weights(serve):
    servicer = RecordingTraining()
    with Client(serve(servicer)) as client:
        client.create_fine_tune_job("ds-1", "pets")
    (req,) = servicer.requests
    assert req.base.WhichOneof("source") == "torchvision"
    assert req.arch == "resnet18"
    assert req.hyperparameters == training_pb2.Hyperparameters()


def test_unknown_hyperparameter_is_a_type_error():
    with Client("127.0.0.1:1") as client, pytest.raises(TypeError, match="learning_rate"):
        client.create_fine_tune_job("ds-1", "pets", learning_rate=0.1)


def test_bad_base_and_precision_are_value_errors():
    with Client("127.0.0.1:1") as client:
        with pytest.raises(ValueError, match="base"):
            client.create_fine_tune_job("ds-1", "pets", base="hub:resnet")
        with pytest.raises(ValueError, match="precision"):
            client.create_fine_tune_job("ds-1", "pets", precision="fp8")


def test_list_jobs_follows_every_page(serve):
    servicer = RecordingTraining()
    with Client(serve(servicer)) as client:
        jobs = client.list_jobs(states=["running", training_pb2.QUEUED], model_name="pets")
    assert [j.id for j in jobs] == [f"job-{i}" for i in range(6)]
    assert len(servicer.requests) == 3
    assert list(servicer.requests[0].states) == [training_pb2.RUNNING, training_pb2.QUEUED]
    assert servicer.requests[0].model_name == "pets"


def test_recipe_hyperparameters_and_find_lr(serve):
    servicer = RecordingTraining()
    servicer.FindLearningRate = lambda request, context: (servicer.requests.append(request),
                                                          training_pb2.Job(id="job-lr"))[1]
    with Client(serve(servicer)) as client:
        client.create_fine_tune_job(
            "ds-1", "pets", group_lrs=[1e-5, 1e-4, 1e-3], auto_lr=True, mixup_alpha=0.4,
            stages=[{"epochs": 1, "freeze_to": 2, "image_size": 64},
                    training_pb2.TrainingStage(epochs=2, freeze_to=0, image_size=128)],
            early_stopping={"metric": "accuracy", "patience": 2})
        job = client.find_learning_rate("ds-1", base="none", num_batches=50, freeze_to=2, image_size=64)
    create, find = servicer.requests
    h = create.hyperparameters
    assert list(h.group_lrs) == [1e-5, 1e-4, 1e-3] and h.auto_lr and h.mixup_alpha == 0.4
    assert [(s.epochs, s.freeze_to, s.image_size) for s in h.stages] == [(1, 2, 64), (2, 0, 128)]
    assert (h.early_stopping.metric, h.early_stopping.patience) == ("accuracy", 2)
    assert job.id == "job-lr"
    assert (find.num_batches, find.freeze_to, find.hyperparameters.image_size) == (50, 2, 64)
    assert find.base.random_init and find.HasField("freeze_to")


def test_text_jobs_send_text_options_and_no_image_arch(serve):
    servicer = RecordingTraining()
    servicer.FindLearningRate = lambda request, context: (servicer.requests.append(request),
                                                          training_pb2.Job(id="job-lr"))[1]
    with Client(serve(servicer)) as client:
        client.create_fine_tune_job("ds-1", "lm", task="language_model", base="none", text={"bptt": "30"})
        client.find_learning_rate("ds-1", task="text_classification", base="model:lm",
                                  text=training_pb2.TextOptions(max_len=50))
    create, find = servicer.requests
    assert create.arch == "" and create.text.bptt == 30 and create.text.HasField("bptt")
    assert not create.text.HasField("emb_size")
    assert find.arch == "" and find.text.max_len == 50 and find.base.stored_model.name == "lm"


def test_base_defaults_to_imagenet_for_images_and_is_not_sent_for_text(serve):
    servicer = RecordingTraining()
    servicer.FindLearningRate = lambda request, context: (servicer.requests.append(request),
                                                          training_pb2.Job(id="job-lr"))[1]
    with Client(serve(servicer)) as client:
        client.create_fine_tune_job("ds-1", "pets")
        client.find_learning_rate("ds-1")
        client.create_fine_tune_job("ds-1", "lm", task="language_model")
        client.find_learning_rate("ds-1", task="text_classification")
    image_job, image_find, text_job, text_find = servicer.requests
    assert image_job.base.WhichOneof("source") == image_find.base.WhichOneof("source") == "torchvision"
    assert not text_job.HasField("base") and not text_find.HasField("base")  # the service names the choices
