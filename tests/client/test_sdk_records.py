"""Typed records: the fields people read as plain Python, the message as .raw, other fields read through; and
fine_tune() raising a typed error for a job that ended FAILED or CANCELLED."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from test_client_wait import FlakyTraining, _state

from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from fineserve_client import Client, Dataset, Job, JobCancelled, JobFailed, JobState, Model, Task


def test_job_fields_enums_and_read_through():
    message = training_pb2.Job(
        id="job-1", state=training_pb2.SUCCEEDED, task=training_pb2.IMAGE_CLASSIFICATION, kind="fine_tune",
        request=training_pb2.CreateFineTuneJobRequest(model_name="pets", dataset_id="ds-1", hyperparameters=
                                                      training_pb2.Hyperparameters(lr=0.01)),
        created_at=Timestamp(seconds=1_700_000_000), attempts=1)
    message.result.model.name, message.result.model.version = "pets", 2
    message.result.metrics["accuracy"] = 0.97
    job = Job.from_proto(message)
    assert (job.id, job.model_name, job.dataset_id, job.model, job.metrics) == (
        "job-1", "pets", "ds-1", "pets/2", {"accuracy": 0.97})
    assert job.state is JobState.SUCCEEDED and job.state == training_pb2.SUCCEEDED and job.done
    assert job.task is Task.IMAGE_CLASSIFICATION and job.state.name == "SUCCEEDED"
    assert job.created is not None and job.created.year == 2023 and job.started is None
    assert job.raw is message and job.request.hyperparameters.lr == pytest.approx(0.01)  # read through
    assert "SUCCEEDED" in repr(job) and "raw" not in repr(job)
    with pytest.raises(AttributeError):
        _ = job.no_such_field


def test_dataset_and_model():
    ds = Dataset.from_proto(datasets_pb2.Dataset(
        id="ds-1", name="pets", layout=datasets_pb2.IMAGE_FOLDERS, source="upload",
        summary=datasets_pb2.DatasetSummary(classes=["cat", "dog"], train_items=10, valid_items=4)))
    assert (ds.classes, ds.train_items, ds.valid_items, ds.layout.name) == (["cat", "dog"], 10, 4, "IMAGE_FOLDERS")
    assert ds.summary.train_items == 10
    model = Model.from_proto(models_pb2.Model(ref=common_pb2.ModelRef(name="pets", version=3), arch="resnet18",
                                              metrics={"accuracy": 0.9}, classes=["cat", "dog"]))
    assert (model.name, model.version, model.metrics, model.ref.version) == ("pets", 3, {"accuracy": 0.9}, 3)


class Creating(FlakyTraining):
    def CreateFineTuneJob(self, request, context):
        return training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=request)


@pytest.mark.parametrize(("state", "error"), [(training_pb2.FAILED, JobFailed),
                                              (training_pb2.CANCELLED, JobCancelled)])
def test_fine_tune_raises_for_a_job_that_did_not_succeed(serve, state, error):
    servicer = Creating(break_after=99, final_state=state,
                        events=[_state(1, training_pb2.RUNNING), _state(2, state, "out of memory")])
    with Client(serve(servicer)) as client:
        with pytest.raises(error) as info:
            client.fine_tune("ds-1", "pets", progress=False)
        assert isinstance(info.value.job, Job) and info.value.job.id == "job-1"
        kept = client.fine_tune("ds-1", "pets", progress=False, check=False)
    assert kept.state == state
    if state == training_pb2.FAILED:
        assert info.value.reason == "out of memory" and "out of memory" in str(info.value)
        assert not isinstance(info.value, JobCancelled)


def test_fine_tune_returns_a_succeeded_job(serve):
    with Client(serve(Creating(break_after=99))) as client:
        job = client.fine_tune("ds-1", "pets", progress=False)
    assert job.state is JobState.SUCCEEDED and job.model == "pets/1"


def test_unknown_enum_numbers_stay_numbers():
    job = Job.from_proto(training_pb2.Job(id="job-1", state=99))
    assert job.state == 99 and not job.done

