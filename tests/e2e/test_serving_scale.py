"""Serving at scale through real gRPC: callers batched into fewer forward passes, more models than a replica's
LRU holds, deleted models dropped from the replicas, and a full queue answered with RESOURCE_EXHAUSTED.

Answers are checked against the engine run in this process on the same model directory (to 1e-6: on CPU an
image's probabilities may move in the last bits with its batch-mates), so a wrong model or a mixed-up caller
fails.
"""

from __future__ import annotations

import io
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.helpers import TERMINAL, Api, classify, upload_requests, wait_for
from fineserve.v1 import common_pb2, inference_pb2, models_pb2, training_pb2
from harness.launcher import ServerProcess
from worker.engine import ImageClassifier
from worker.serving_stats import REPORT_S

LRU_SIZE = 2


def _digits_zip(mnist: Path, prefix: str, per_class: int = 12) -> bytes:
    """A few mnist_tiny images per class, classes renamed "<prefix>3"/"<prefix>7" so each model's labels differ."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split in ("train", "valid"):
            for cls in ("3", "7"):
                for f in sorted((mnist / split / cls).glob("*.png"))[:per_class]:
                    zf.write(f, f"ds/{split}/{prefix}{cls}/{f.name}")
    return buf.getvalue()


def _train(api: Api, mnist: Path, name: str, prefix: str, image_size: int = 32) -> training_pb2.Job:
    ds = api.datasets.UploadDataset(upload_requests(_digits_zip(mnist, prefix), f"{name}-data"), timeout=60)
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, model_name=name, arch="resnet18", dataset_id=ds.id,
        base=training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(epochs=1, image_size=image_size, batch_size=16)), timeout=30)
    job = wait_for(api, job.id, TERMINAL, timeout=600)
    assert job.state == training_pb2.SUCCEEDED, job.error
    return job


def _expected(server: ServerProcess, name: str, version: int, images: list[bytes]) -> list[list[tuple[str, float]]]:
    model = ImageClassifier.load(server.data_dir / "models" / "default" / name / str(version), device="cpu")
    return model.classify(images, top_k=2)


def _answers(resp: object) -> list[list[tuple[str, float]]]:
    return [[(s.label, pytest.approx(s.probability, abs=1e-6)) for s in r.top] for r in resp.results]


def _metrics(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    with urllib.request.urlopen(server.metrics_url, timeout=30) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _metric(m: dict, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.25)


def _valid_images(mnist: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((mnist / "valid").glob("*/*.png"))]


def test_concurrent_classify_calls_share_forward_passes(server: ServerProcess, mnist: Path) -> None:
    api = Api(server.target)
    _train(api, mnist, "batched", "b")
    images = _valid_images(mnist)[::20][:32]
    expected = _expected(server, "batched", 1, images)
    assert _answers(classify(api, "batched", images[:1])) == expected[:1]  # loads the model
    time.sleep(2.5 * REPORT_S)  # that call's pass is reported: the counts below are the burst's alone
    before = _metrics(server)
    start = threading.Barrier(len(images))

    def call(i: int) -> object:
        start.wait()
        return classify(api, "batched", [images[i]])

    with ThreadPoolExecutor(len(images)) as pool:
        responses = list(pool.map(call, range(len(images))))
    for i, resp in enumerate(responses):
        assert _answers(resp) == [expected[i]], f"caller {i} got another caller's answer"

    def since_before(name: str) -> float:
        return _metric(_metrics(server), name, method="classify") - _metric(before, name, method="classify")

    # Replicas report their passes every REPORT_S; wait for this burst's images to be counted.
    _until(lambda: since_before("fineserve_batch_images_sum") >= len(images), "the burst's passes reported")
    passes, served = since_before("fineserve_forward_passes_total"), since_before("fineserve_batch_images_sum")
    print(f"\n{len(images)} concurrent Classify calls: {passes:.0f} forward passes, {served:.0f} images")
    assert served == len(images), (passes, served)
    assert passes < len(images), f"{passes:.0f} forward passes for {len(images)} calls: no batching"

    # One call with more images than a forward pass holds (32) is split, and its answers re-joined in order.
    many = _valid_images(mnist)[:40]
    assert _answers(classify(api, "batched", many)) == _expected(server, "batched", 1, many)
    with pytest.raises(grpc.RpcError) as err:
        classify(api, "batched", [*many[:35], b"not an image", *many[36:]])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "image 35" in err.value.details()
    api.close()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory, shared_data: Path,
                 torch_home: Path) -> Iterator[ServerProcess]:
    """An LRU of two models, one request on a replica at a time and one more in the queue."""
    srv = ServerProcess(tmp_path_factory.mktemp("small") / "data", "--allowed-root", str(shared_data),
                        "--models-per-replica", str(LRU_SIZE), "--serve-max-ongoing-requests", "1",
                        "--serve-max-queued-requests", "1", "--metrics-port", "0").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def three_models(small_server: ServerProcess, mnist: Path) -> list[str]:
    api = Api(small_server.target)
    for name in ("m0", "m1", "m2"):  # m0 is the slow one: 96 px
        _train(api, mnist, name, name, image_size=96 if name == "m0" else 32)
    api.close()
    return ["m0", "m1", "m2"]


def _loaded(api: Api, name: str) -> int:
    return api.models.GetModel(models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name=name)),
                               timeout=30).loaded_replicas


def test_more_models_than_the_lru_all_answer_and_the_replica_holds_at_most_n(
        small_server: ServerProcess, three_models: list[str], mnist: Path) -> None:
    api = Api(small_server.target)
    images = _valid_images(mnist)[::50][:3]
    expected = {name: _expected(small_server, name, 1, images) for name in three_models}
    for _ in range(2):
        for name in three_models:
            assert _answers(classify(api, name, images)) == expected[name], name
    # Round-robin over three with room for two: the first was evicted, the last two stay.
    _until(lambda: [_loaded(api, n) for n in three_models] == [0, 1, 1], "GetModel's loaded_replicas")
    m = _metrics(small_server)
    held_max = {dict(k[1])["replica"]: v for k, v in m.items() if k[0] == "fineserve_models_loaded_max"}
    print(f"\nmost models held at once per replica (LRU size {LRU_SIZE}): {held_max}")
    assert held_max and max(held_max.values()) == LRU_SIZE, held_max

    # A deleted model leaves the replicas; its version number, used again, serves the new weights.
    api.models.DeleteModel(models_pb2.DeleteModelRequest(ref=common_pb2.ModelRef(name="m2", version=1)), timeout=30)
    _until(lambda: _metric(_metrics(small_server), "fineserve_model_replicas", model="default/m2/1") == 0,
           "the deleted model dropped from the replica")
    _train(api, mnist, "m2", "x")
    assert _answers(classify(api, "m2", images)) == _expected(small_server, "m2", 1, images)
    assert {s.label for r in classify(api, "m2", images).results for s in r.top} <= {"x3", "x7"}
    api.close()


def test_full_queue_refuses_fast_and_the_service_stays_healthy(
        small_server: ServerProcess, three_models: list[str], mnist: Path) -> None:
    api = Api(small_server.target)
    images = _valid_images(mnist)[:64]
    classify(api, "m0", images[:1])
    outcomes: list[tuple[grpc.StatusCode, float]] = []
    start = threading.Barrier(12)

    def call(_: int) -> None:
        start.wait()
        try:
            classify(api, "m0", images)
            outcomes.append((grpc.StatusCode.OK, time.monotonic()))
        except grpc.RpcError as e:
            outcomes.append((e.code(), time.monotonic()))

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(call, range(12)))
    codes = [c for c, _ in outcomes]
    print(f"\n12 concurrent 64-image calls, 1 running + 1 queued allowed: "
          f"{codes.count(grpc.StatusCode.OK)} OK, {codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)} refused")
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1 and codes.count(grpc.StatusCode.OK) >= 1, codes
    last_ok = max(t for c, t in outcomes if c == grpc.StatusCode.OK)
    assert all(t < last_ok for c, t in outcomes if c == grpc.StatusCode.RESOURCE_EXHAUSTED), \
        "a refusal waited for the work ahead of it"
    refused = _metric(_metrics(small_server), "fineserve_requests_total", method="Classify", code="RESOURCE_EXHAUSTED")
    assert refused == codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)

    # A caller's deadline ends the call (the front door counts it as DEADLINE_EXCEEDED); the service goes on.
    with pytest.raises(grpc.RpcError) as err:
        api.inference.Classify(inference_pb2.ClassifyRequest(
            model=common_pb2.ModelRef(name="m0"), images=[common_pb2.Image(data=d) for d in images]), timeout=0.25)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _until(lambda: _metric(_metrics(small_server), "fineserve_requests_total", method="Classify",
                           code="DEADLINE_EXCEEDED") >= 1, "the front door saw the deadline")
    assert small_server.healthy()
    assert _answers(classify(api, "m0", images[:2])) == _expected(small_server, "m0", 1, images[:2])
    api.close()

