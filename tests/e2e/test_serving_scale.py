"""Serving at scale through real gRPC: callers batched into fewer forward passes, a caller's deadline cancelling its
work on the replica, more models than a replica's LRU holds, deleted models dropped from the replicas, a full
queue answered with RESOURCE_EXHAUSTED, the front door's metrics, and SIGTERM finishing the calls in flight.

Answers are checked against the engine run in this process on the same model directory (to 1e-6: on CPU an
image's probabilities may move in the last bits with its batch-mates), so a wrong model or a mixed-up caller
fails.
"""

from __future__ import annotations

import io
import signal
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

from e2e.helpers import TERMINAL, Api, classify, rpc_code, upload_requests, wait_for
from fineserve.v1 import common_pb2, inference_pb2, models_pb2, training_pb2
from harness.launcher import ServerProcess
from service.call_merging import IN_FLIGHT
from worker.engine import ImageClassifier

LRU_SIZE = 2
QUEUED = 16
# The session server's model: large enough images that a few full calls keep its replica busy for seconds.
BATCHED_SIZE = 128


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


def _classify_images(server: ServerProcess) -> float:
    """Images the replicas have reported through Classify's forward passes (every REPORT_S)."""
    return _metric(_metrics(server), "fineserve_batch_images_sum", method="classify")


def _three_image_passes(server: ServerProcess) -> float:
    m = _metrics(server)
    return (_metric(m, "fineserve_batch_images_bucket", method="classify", le="4.0")
            - _metric(m, "fineserve_batch_images_bucket", method="classify", le="2.0"))


def _marker(server: ServerProcess, api: Api, model: str, images: list[bytes]) -> None:
    """A 3-image call, waited for until its pass is reported: a replica reports its passes in order, so every
    pass it ran before is counted then too. (No other call here makes a pass of 3 or 4 images while a marker's
    report is awaited.)"""
    seen = _three_image_passes(server)
    classify(api, model, images[:3])
    _until(lambda: _three_image_passes(server) > seen, "the marker call's pass reported")


@pytest.fixture(scope="module")
def batched(server: ServerProcess, mnist: Path) -> str:
    """A model on the session server, trained while fineserve_jobs is watched: RUNNING 1 while its job runs, 0
    after (no other job runs meanwhile)."""
    api = Api(server.target)
    ds = api.datasets.UploadDataset(upload_requests(_digits_zip(mnist, "b"), "batched-data"), timeout=60)
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, model_name="batched", arch="resnet18", dataset_id=ds.id,
        base=training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(epochs=1, image_size=BATCHED_SIZE, batch_size=16)), timeout=30)

    def running_seen() -> bool:
        m = _metrics(server)
        state = api.training.GetJob(training_pb2.GetJobRequest(id=job.id), timeout=10).state
        assert state not in TERMINAL, "the job ended before fineserve_jobs{state=RUNNING} showed it"
        return (state == training_pb2.RUNNING and _metric(m, "fineserve_jobs", state="RUNNING") == 1
                and _metric(m, "fineserve_jobs", state="QUEUED") == 0)

    _until(running_seen, "fineserve_jobs{state=RUNNING} == 1", timeout=300)
    done = wait_for(api, job.id, TERMINAL, timeout=600)
    assert done.state == training_pb2.SUCCEEDED, done.error
    after = _metrics(server)
    assert _metric(after, "fineserve_jobs", state="RUNNING") == _metric(after, "fineserve_jobs", state="QUEUED") == 0
    api.close()
    return "batched"


def test_concurrent_classify_calls_share_forward_passes(server: ServerProcess, batched: str, mnist: Path) -> None:
    api = Api(server.target)
    images = _valid_images(mnist)[::20][:32]
    expected = _expected(server, batched, 1, images)
    _marker(server, api, batched, images)  # loads the model; earlier passes are counted before the burst
    before = _metrics(server)
    start = threading.Barrier(len(images))

    def call(i: int) -> object:
        start.wait()
        return classify(api, batched, [images[i]])

    with ThreadPoolExecutor(len(images)) as pool:
        responses = list(pool.map(call, range(len(images))))
    for i, resp in enumerate(responses):
        assert _answers(resp) == [expected[i]], f"caller {i} got another caller's answer"

    def since_before(name: str, **labels: str) -> float:
        return _metric(_metrics(server), name, **labels) - _metric(before, name, **labels)

    # Replicas report their passes every REPORT_S; wait for this burst's images to be counted.
    _until(lambda: since_before("fineserve_batch_images_sum", method="classify") >= len(images),
           "the burst's passes reported")
    passes = since_before("fineserve_forward_passes_total", method="classify")
    served = since_before("fineserve_batch_images_sum", method="classify")
    print(f"\n{len(images)} concurrent Classify calls: {passes:.0f} forward passes, {served:.0f} images")
    assert served == len(images), (passes, served)
    # Released together, the calls queue behind the first pass and go in together: on average at least two a pass.
    assert passes <= len(images) // 2, f"{passes:.0f} forward passes for {len(images)} calls: little batching"
    # The front door's own metrics counted each call once, with its time.
    assert since_before("fineserve_request_seconds_count", method="Classify") == len(images)
    assert since_before("fineserve_requests_total", method="Classify", code="OK") == len(images)
    assert since_before("fineserve_request_seconds_sum", method="Classify") > 0

    # One call with more images than a forward pass holds (32) is split, and its answers re-joined in order.
    many = _valid_images(mnist)[:40]
    assert _answers(classify(api, batched, many)) == _expected(server, batched, 1, many)
    with pytest.raises(grpc.RpcError) as err:
        classify(api, batched, [*many[:35], b"not an image", *many[36:]])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "image 35" in err.value.details()
    api.close()


def test_a_callers_deadline_cancels_its_work_on_the_replica(server: ServerProcess, batched: str,
                                                             mnist: Path) -> None:
    """A call whose deadline passes while it waits behind other calls' passes on the replica never runs its
    forward pass: the replica counts the other calls' images and not its one."""
    api = Api(server.target)
    images = _valid_images(mnist)[:64]
    _marker(server, api, batched, images)
    before = _classify_images(server)
    finished: list[float] = []

    def blocker(_: int) -> None:
        classify(api, batched, images)
        finished.append(time.monotonic())

    with ThreadPoolExecutor(6) as pool:
        blockers = [pool.submit(blocker, i) for i in range(6)]  # 384 images: 12 full passes
        _until(lambda: _classify_images(server) > before, "the blockers' first pass reported")
        with pytest.raises(grpc.RpcError) as err:
            api.inference.Classify(inference_pb2.ClassifyRequest(
                model=common_pb2.ModelRef(name=batched), images=[common_pb2.Image(data=images[0])]), timeout=0.3)
        expired = time.monotonic()
        for b in blockers:
            b.result()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert expired < max(finished), "the deadline passed after the blockers finished: nothing for it to wait on"
    # The blockers' passes are full (32 images), the expired call's would hold 1 image or join one of theirs.
    _marker(server, api, batched, images)
    assert _classify_images(server) == before + 6 * 64 + 3, "the expired call's image went through a forward pass"
    _until(lambda: _metric(_metrics(server), "fineserve_requests_total", method="Classify",
                           code="DEADLINE_EXCEEDED") >= 1, "the front door saw the deadline")
    api.close()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory, shared_data: Path,
                 torch_home: Path) -> Iterator[ServerProcess]:
    """An LRU of two models and one request on a replica at a time. Classify calls wait in the front door while
    IN_FLIGHT merged requests per model are out (service/call_merging.py); QUEUED images may wait there."""
    srv = ServerProcess(tmp_path_factory.mktemp("small") / "data", "--allowed-root", str(shared_data),
                        "--models-per-replica", str(LRU_SIZE), "--serve-max-ongoing-requests", "1",
                        "--serve-max-queued-requests", str(QUEUED), "--metrics-port", "0").start()
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
    # Dropped, not only unreported: the replica holds one model fewer, and the name answers NOT_FOUND.
    loaded = {k: v for k, v in _metrics(small_server).items() if k[0] == "fineserve_models_loaded"}
    assert sorted(loaded.values()) == [LRU_SIZE - 1], loaded
    assert rpc_code(classify, api, "m2", images) == grpc.StatusCode.NOT_FOUND
    _train(api, mnist, "m2", "x")
    assert _answers(classify(api, "m2", images)) == _expected(small_server, "m2", 1, images)
    assert {s.label for r in classify(api, "m2", images).results for s in r.top} <= {"x3", "x7"}
    api.close()


def test_full_queue_refuses_at_once_and_the_service_stays_healthy(
        small_server: ServerProcess, three_models: list[str], mnist: Path) -> None:
    api = Api(small_server.target)
    images = _valid_images(mnist)[:QUEUED]
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
    print(f"\n12 concurrent {QUEUED}-image calls, {IN_FLIGHT} requests out and {QUEUED} images waiting allowed: "
          f"{codes.count(grpc.StatusCode.OK)} OK, {codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)} refused")
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1 and codes.count(grpc.StatusCode.OK) >= 1, codes
    # Every refusal came while the queue was still full: before any accepted call had finished.
    first_ok = min(t for c, t in outcomes if c == grpc.StatusCode.OK)
    assert all(t < first_ok for c, t in outcomes if c == grpc.StatusCode.RESOURCE_EXHAUSTED), \
        "a refusal waited for the work ahead of it"
    refused = _metric(_metrics(small_server), "fineserve_requests_total", method="Classify", code="RESOURCE_EXHAUSTED")
    assert refused == codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert small_server.healthy()
    assert _answers(classify(api, "m0", images[:2])) == _expected(small_server, "m0", 1, images[:2])
    api.close()


def test_sigterm_finishes_the_calls_in_flight_then_exits_0(
        small_server: ServerProcess, three_models: list[str], mnist: Path) -> None:
    """Runs last in this module: it stops the module's server. The call in flight is one that made the replica
    load its model (the replica reports a load as it starts), so SIGTERM finds it loading or in its pass."""
    api = Api(small_server.target)
    images = _valid_images(mnist)[:QUEUED]
    expected = _expected(small_server, "m0", 1, images)

    def m0_held() -> float:
        return _metric(_metrics(small_server), "fineserve_model_replicas", model="default/m0/1")

    for name in ("m1", "m2"):  # two others fill the LRU: m0 is evicted
        classify(api, name, images[:3])
    _until(lambda: m0_held() == 0, "m0 evicted")
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(classify, api, "m0", images)
        deadline = time.monotonic() + 60
        while m0_held() == 0:
            assert time.monotonic() < deadline and not call.done(), "the call never made the replica load m0"
            time.sleep(0.02)
        assert small_server.proc is not None
        small_server.proc.send_signal(signal.SIGTERM)
        assert not call.done(), "the call finished before SIGTERM"
        assert _answers(call.result()) == expected
    assert small_server.stop() == 0
    api.close()
