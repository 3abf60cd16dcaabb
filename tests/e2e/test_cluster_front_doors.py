"""Two front doors on one Ray cluster (the Kubernetes shape): they share datasets, jobs and models through the
cluster's job coordinator, a job outlives the front door it was created through, and a model deleted through
one door stops being served by the other (whose model lookups are cached)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from e2e.helpers import TERMINAL, Api, classify, upload_requests, wait_for, zip_folder
from fineserve.v1 import common_pb2, datasets_pb2, models_pb2, training_pb2
from harness.launcher import RayHead, ServerProcess

START_S = 300
"""Seconds both doors have to listen (about one minute each on a loaded 2-core machine)."""


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RayHead(tmp_path_factory.mktemp("ray-head") / "head.log", num_cpus=2) as address:
        yield address


def test_two_front_doors_share_everything_and_jobs_outlive_theirs(
        ray_head: str, tmp_path: Path, shared_data: Path) -> None:
    data_dir = tmp_path / "data"  # the shared volume of the Kubernetes deployment
    a, b = (ServerProcess(data_dir, "--ray-address", ray_head) for _ in range(2))
    b.log_path = tmp_path / "door-b.log"
    # Both at once, as a Deployment's pods (and the benchmark's --front-doors) start: neither door's deploy of
    # the serving app may undo the other's; a hang fails here at the generous deadline, with the door's log.
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda door: door.start(timeout=START_S), (a, b)))
    api_a, api_b = Api(a.target), Api(b.target)
    try:
        mnist = shared_data / "mnist_tiny"
        ds = api_a.datasets.UploadDataset(upload_requests(zip_folder(mnist, ("train", "valid")), "mnist"),
                                          timeout=120)
        assert [d.id for d in api_b.datasets.ListDatasets(datasets_pb2.ListDatasetsRequest()).datasets] == [ds.id]
        request = training_pb2.CreateFineTuneJobRequest(
            task=training_pb2.IMAGE_CLASSIFICATION, model_name="shared", arch="resnet18", dataset_id=ds.id,
            base=training_pb2.BaseModel(random_init=True), request_id="once",
            hyperparameters=training_pb2.Hyperparameters(freeze_epochs=0, epochs=2, image_size=28))
        job = api_a.training.CreateFineTuneJob(request, timeout=30)
        assert api_b.training.CreateFineTuneJob(request, timeout=30).id == job.id, \
            "one idempotency key, one job, whichever door"
        for ev in api_b.training.WatchJob(training_pb2.WatchJobRequest(id=job.id), timeout=600):
            if ev.WhichOneof("event") == "checkpoint":
                break
        api_a.close()
        assert a.kill() == -signal.SIGKILL  # the door the job came through dies mid-job

        done = wait_for(api_b, job.id, TERMINAL)
        assert done.state == training_pb2.SUCCEEDED, done.error
        assert done.attempts == 1, "the job kept running: it belongs to the cluster, not to a front door"
        image = next((mnist / "valid" / "3").iterdir()).read_bytes()
        answer = classify(api_b, "shared", [image], version=done.result.model.version)
        assert answer.results[0].top[0].label in ("3", "7")

        a.start()  # a replacement door sees the same job and model
        api_a = Api(a.target)
        assert api_a.training.GetJob(training_pb2.GetJobRequest(id=job.id)).state == training_pb2.SUCCEEDED
        assert classify(api_a, "shared", [image], version=done.result.model.version) == answer

        # Door b looks "shared" up from its cache now; a delete through door a reaches it too.
        assert classify(api_b, "shared", [image]) == answer
        api_a.models.DeleteModel(models_pb2.DeleteModelRequest(ref=common_pb2.ModelRef(name="shared")), timeout=30)
        deadline = time.monotonic() + 60  # generous: door b's cache entry expires, then it looks again
        while True:
            with pytest.raises(grpc.RpcError) as err:
                classify(api_b, "shared", [image])
            if err.value.code() == grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    finally:
        api_a.close()
        api_b.close()
        for door in (a, b):
            if door.proc is not None and door.proc.poll() is None:
                door.stop()
