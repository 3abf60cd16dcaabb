"""Tenancy matrix: tenant bob against each of alice's datasets, jobs and models, through every RPC that takes
an id. Nothing of alice's is visible or usable to bob, and each refusal reads exactly like an unknown id."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, models_pb2, training_pb2
from security.conftest import SecureServer, Trained, train_tiny
from security.helpers import Stubs, image_folders, upload_requests, zip_folder

NF = grpc.StatusCode.NOT_FOUND


def _job(dataset_id: str, base: training_pb2.BaseModel | None = None,
         **kw: str) -> training_pb2.CreateFineTuneJobRequest:
    return training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, arch="resnet18", dataset_id=dataset_id,
        model_name=kw.pop("model_name", "stolen"), base=base or training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(epochs=1, freeze_epochs=0, image_size=16),
        resources=common_pb2.Resources(cpu_only=True), **kw)


def _lr(dataset_id: str) -> training_pb2.FindLearningRateRequest:
    return training_pb2.FindLearningRateRequest(task=training_pb2.IMAGE_CLASSIFICATION, dataset_id=dataset_id,
                                                base=training_pb2.BaseModel(random_init=True))


@pytest.fixture(scope="module")
def bob_dataset(secure: SecureServer, tmp_path_factory: pytest.TempPathFactory) -> datasets_pb2.Dataset:
    folder = image_folders(tmp_path_factory.mktemp("bob") / "pets", {"cat": (30, 200, 30), "dog": (240, 240, 30)})
    bob = secure.stubs("bob")
    return bob.datasets.UploadDataset(upload_requests(zip_folder(folder), "bob-pets"), metadata=bob.metadata,
                                      timeout=60)


def _same_as_unknown(call: Callable[[str], tuple[grpc.StatusCode, str]], real: str, what: str) -> None:
    """NOT_FOUND for the other tenant's id, with the message an id that never existed gets."""
    fake = real.split("-")[0] + "-00000000deadbeef"
    code, details = call(real)
    code_fake, details_fake = call(fake)
    assert code == NF, f"{what}: {code.name} {details}"
    assert code_fake == NF and details.replace(real, "ID") == details_fake.replace(fake, "ID"), what


def test_bob_cannot_reach_alices_datasets_and_jobs(secure: SecureServer, alice_model: Trained,
                                                  bob_dataset: datasets_pb2.Dataset) -> None:
    bob = secure.stubs("bob")
    ds_a, job_a = alice_model.dataset.id, alice_model.job.id
    for what, call, real in [
        ("GetDataset", lambda i: bob.code(bob.datasets.GetDataset, datasets_pb2.GetDatasetRequest(id=i)), ds_a),
        ("DeleteDataset", lambda i: bob.code(bob.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(id=i)),
         ds_a),
        ("CreateFineTuneJob", lambda i: bob.code(bob.training.CreateFineTuneJob, _job(i)), ds_a),
        ("FindLearningRate", lambda i: bob.code(bob.training.FindLearningRate, _lr(i)), ds_a),
        ("GetJob", lambda i: bob.code(bob.training.GetJob, training_pb2.GetJobRequest(id=i)), job_a),
        ("CancelJob", lambda i: bob.code(bob.training.CancelJob, training_pb2.CancelJobRequest(id=i)), job_a),
        ("WatchJob", lambda i: bob.code(bob.training.WatchJob, training_pb2.WatchJobRequest(id=i)), job_a),
        ("WatchJob from 3", lambda i: bob.code(bob.training.WatchJob,
                                               training_pb2.WatchJobRequest(id=i, from_sequence=3)), job_a),
    ]:
        _same_as_unknown(call, real, what)
    datasets = bob.call(bob.datasets.ListDatasets, datasets_pb2.ListDatasetsRequest()).datasets
    assert [d.id for d in datasets] == [bob_dataset.id] and datasets[0].tenant == "bob"
    assert bob.call(bob.training.ListJobs, training_pb2.ListJobsRequest()).jobs == []
    assert bob.call(bob.training.ListJobs, training_pb2.ListJobsRequest(model_name="pets")).jobs == []
    # alice still has everything
    alice = secure.client("alice")
    assert alice.get_dataset(ds_a).tenant == "alice" and alice.get_job(job_a).tenant == "alice"


def test_bob_cannot_read_use_serve_or_delete_alices_model(secure: SecureServer, alice_model: Trained,
                                                          bob_dataset: datasets_pb2.Dataset) -> None:
    """Before bob has a "pets" of his own: alice's "pets" does not exist for him, by any version."""
    bob = secure.stubs("bob")
    image = common_pb2.Image(data=alice_model.images[0], name="x")
    for version in (0, 1):
        ref = common_pb2.ModelRef(name="pets", version=version)
        for what, call in [
            ("GetModel", lambda r: bob.code(bob.models.GetModel, models_pb2.GetModelRequest(ref=r))),
            ("DeleteModel", lambda r: bob.code(bob.models.DeleteModel, models_pb2.DeleteModelRequest(ref=r))),
            ("Classify", lambda r: bob.code(bob.inference.Classify,
                                            inference_pb2.ClassifyRequest(model=r, images=[image]))),
            ("base", lambda r: bob.code(bob.training.CreateFineTuneJob, _job(
                bob_dataset.id, training_pb2.BaseModel(stored_model=r)))),
            ("base for LR test", lambda r: bob.code(bob.training.FindLearningRate, training_pb2.FindLearningRateRequest(
                task=training_pb2.IMAGE_CLASSIFICATION, dataset_id=bob_dataset.id,
                base=training_pb2.BaseModel(stored_model=r)))),
        ]:
            code, details = call(ref)
            assert code == NF, f"{what} v{version}: {code.name} {details}"
            assert "alice" not in details
    assert bob.call(bob.models.ListModels, models_pb2.ListModelsRequest()).models == []
    assert bob.call(bob.models.ListModels, models_pb2.ListModelsRequest(name="pets")).models == []
    alice = secure.client("alice")
    assert [c.top for c in alice.classify("pets", alice_model.images, top_k=2, version=1)] == alice_model.answers


def test_idempotency_keys_are_per_tenant(secure: SecureServer, alice_model: Trained,
                                         bob_dataset: datasets_pb2.Dataset) -> None:
    """bob reusing alice's request_id gets a job of his own, never alice's job."""
    bob = secure.stubs("bob")
    request_id = alice_model.job.request.request_id
    assert request_id
    job = bob.call(bob.training.CreateFineTuneJob, _job(bob_dataset.id, request_id=request_id))
    try:
        assert job.id != alice_model.job.id and job.tenant == "bob"
        assert bob.call(bob.training.CreateFineTuneJob, _job(bob_dataset.id, request_id=request_id)).id == job.id
    finally:
        bob.call(bob.training.CancelJob, training_pb2.CancelJobRequest(id=job.id))
    alice = secure.stubs("alice")
    assert alice.call(alice.training.CreateFineTuneJob, alice_model.job.request).id == alice_model.job.id


@pytest.fixture(scope="module")
def bob_pets(secure: SecureServer, alice_model: Trained, tmp_path_factory: pytest.TempPathFactory):
    """bob trains his own "pets" (classes cat/dog): the same model name as alice's, in another tenant."""
    folder = image_folders(tmp_path_factory.mktemp("bob2") / "pets", {"cat": (30, 200, 30), "dog": (240, 240, 30)})
    return train_tiny(secure.client("bob"), folder, "pets")


def test_same_model_name_in_two_tenants(secure: SecureServer, alice_model: Trained, bob_pets) -> None:
    bob, alice = secure.stubs("bob"), secure.stubs("alice")
    ref = common_pb2.ModelRef(name="pets", version=1)
    bob_model = bob.call(bob.models.GetModel, models_pb2.GetModelRequest(ref=ref))
    alice_model_msg = alice.call(alice.models.GetModel, models_pb2.GetModelRequest(ref=ref))
    assert (bob_model.tenant, set(bob_model.classes)) == ("bob", {"cat", "dog"})
    assert (alice_model_msg.tenant, set(alice_model_msg.classes)) == ("alice", {"red", "blue"})
    image = common_pb2.Image(data=alice_model.images[0], name="x")
    answer = bob.call(bob.inference.Classify, inference_pb2.ClassifyRequest(model=ref, images=[image]))
    assert answer.results[0].top[0].label in {"cat", "dog"}
    models = secure.proc.data_dir / "models"
    assert (models / "alice" / "pets" / "1").is_dir() and (models / "bob" / "pets" / "1").is_dir()
    assert not (models / "pets").exists()
    # bob's list shows his model only
    listed = bob.call(bob.models.ListModels, models_pb2.ListModelsRequest()).models
    assert [(m.tenant, m.ref.name, m.ref.version) for m in listed] == [("bob", "pets", 1)]


def test_deleting_bobs_pets_leaves_alices(secure: SecureServer, alice_model: Trained, bob_pets) -> None:
    bob, alice = secure.client("bob"), secure.client("alice")
    assert [(r.name, r.version) for r in bob.delete_model("pets")] == [("pets", 1)]
    assert not (secure.proc.data_dir / "models" / "bob" / "pets" / "1").exists()
    assert bob.list_models() == []
    assert alice.get_model("pets").ref.version == 1
    assert [c.top for c in alice.classify("pets", alice_model.images, top_k=2, version=1)] == alice_model.answers


def test_unauthenticated_tenant_sees_nothing(secure: SecureServer, alice_model: Trained) -> None:
    s: Stubs = secure.stubs(None)
    code, _ = s.code(s.datasets.GetDataset, datasets_pb2.GetDatasetRequest(id=alice_model.dataset.id))
    assert code == grpc.StatusCode.UNAUTHENTICATED
