"""Multi-label scores and Grad-CAM heatmaps end to end: a labels-CSV upload, a multi-label fine-tune on a real
local Ray, ScoreLabels (stored and request thresholds) and Explain (single- and multi-label models), and the
status codes of bad requests, all through real gRPC. Models are tiny: quality is tested in tests/engine."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from e2e.helpers import TERMINAL, Api, classify, rpc_code, upload_requests, wait_for, zip_folder
from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, inference_pb2_grpc, models_pb2, training_pb2
from harness.launcher import ServerProcess

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
HYPER = training_pb2.Hyperparameters(epochs=1, image_size=64, batch_size=8, lr=5e-3, lr_mult=100, flip=False)


def squares(tags: list[str], seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    """A noisy image with one square per tag, in the tag's colour (PNG)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, (size[1], size[0], 3), dtype=np.uint8)
    for tag in tags:
        x, y = rng.integers(0, size[0] - 12), rng.integers(0, size[1] - 12)
        pixels[y : y + 12, x : x + 12] = COLOURS[tag]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def labels_dataset(root: Path) -> Path:
    """labels.csv + images/ with 1-2 coloured squares each, an is_valid column picking 8 of 32."""
    folder = root / "colours"
    (folder / "images").mkdir(parents=True)
    rows = ["fname,labels,is_valid"]
    names = list(COLOURS)
    for i in range(32):
        tags = [names[i % 3]] + ([names[(i + 1) % 3]] if i % 4 == 0 else [])
        (folder / "images" / f"{i}.png").write_bytes(squares(tags, i))
        rows.append(f"images/{i}.png,{' '.join(tags)},{'true' if i >= 24 else 'false'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def fine_tune(api: Api, task: int, name: str, dataset_id: str) -> training_pb2.Job:
    job = api.training.CreateFineTuneJob(
        training_pb2.CreateFineTuneJobRequest(
            task=task,
            model_name=name,
            arch="resnet18",
            dataset_id=dataset_id,
            base=training_pb2.BaseModel(random_init=True),
            hyperparameters=HYPER,
        ),
        timeout=30,
    )
    return wait_for(api, job.id, TERMINAL, timeout=600)


@pytest.fixture(scope="module")
def models(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, models_pb2.Model]]:
    """ "colours" (multi-label, from an uploaded labels CSV) and "shapes" (single-label, image folders)."""
    root = tmp_path_factory.mktemp("labels_e2e")
    api = Api(server.target)
    ds = api.datasets.UploadDataset(
        upload_requests(zip_folder(labels_dataset(root)), "colours", layout=datasets_pb2.IMAGE_LABELS_CSV), timeout=60
    )
    assert list(ds.summary.classes) == ["blue", "green", "red"]
    assert (ds.summary.train_items, ds.summary.valid_items) == (24, 8)
    shapes = root / "shapes"
    for i in range(24):
        tag = ("red", "blue")[i % 2]
        (shapes / tag).mkdir(parents=True, exist_ok=True)
        (shapes / tag / f"{i}.png").write_bytes(squares([tag], 100 + i))
    folders = api.datasets.UploadDataset(upload_requests(zip_folder(shapes), "shapes"), timeout=60)
    jobs = {
        "colours": fine_tune(api, training_pb2.MULTI_LABEL_CLASSIFICATION, "colours", ds.id),
        "shapes": fine_tune(api, training_pb2.IMAGE_CLASSIFICATION, "shapes", folders.id),
    }
    for job in jobs.values():
        assert job.state == training_pb2.SUCCEEDED, job.error
    yield {name: api.models.GetModel(models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name=name))) for name in jobs}
    api.close()


def score(api: Api, images: list[bytes], threshold: float | None = None) -> inference_pb2.ScoreLabelsResponse:
    request = inference_pb2.ScoreLabelsRequest(
        model=common_pb2.ModelRef(name="colours"),
        images=[common_pb2.Image(data=d, name=f"im{i}") for i, d in enumerate(images)],
    )
    if threshold is not None:
        request.threshold = threshold
    return api.inference.ScoreLabels(request, timeout=120)


def explain(api: Api, model: str, images: list[bytes], target: str = "") -> inference_pb2.ExplainResponse:
    return api.inference.Explain(
        inference_pb2.ExplainRequest(
            model=common_pb2.ModelRef(name=model),
            target=target,
            images=[common_pb2.Image(data=d, name=f"im{i}") for i, d in enumerate(images)],
        ),
        timeout=120,
    )


def test_multi_label_model_card_and_metrics(models: dict[str, models_pb2.Model]) -> None:
    model = models["colours"]
    card = json.loads(model.card_json)
    assert model.task == training_pb2.MULTI_LABEL_CLASSIFICATION and list(model.classes) == ["blue", "green", "red"]
    assert card["fbeta_beta"] == 2.0 and len(card["thresholds"]) == 3
    assert all(0 < t < 1 for t in card["thresholds"])
    assert {"accuracy", "fbeta", "valid_loss"} <= set(model.metrics)  # as served: fbeta at the thresholds
    assert {"fbeta", "fbeta_tuned"} <= set(card["training_metrics"])


def test_score_labels_one_and_many_images(api: Api, models: dict[str, models_pb2.Model]) -> None:
    thresholds = dict(
        zip(models["colours"].classes, json.loads(models["colours"].card_json)["thresholds"], strict=True)
    )
    images = [squares(["red"], 7000), squares(["green", "blue"], 7001), squares([], 7002)]
    one = score(api, images[:1])
    many = score(api, images)
    assert len(one.results) == 1 and len(many.results) == 3 and many.model.version == 1
    assert [r.name for r in many.results] == ["im0", "im1", "im2"]
    # The same scores alone or beside other images (to float32 rounding: on CPU the batch picks the kernels).
    assert ([(s.label, pytest.approx(s.score, abs=1e-6)) for s in one.results[0].scores]
            == [(s.label, s.score) for s in many.results[0].scores])
    for result in many.results:
        scores = {s.label: s.score for s in result.scores}
        assert list(scores) == ["blue", "green", "red"] and all(0 <= v <= 1 for v in scores.values())
        assert set(result.predicted) == {label for label, v in scores.items() if v > thresholds[label]}
    # The stored per-label thresholds decide, deterministically: on images of every colour combination the same
    # request answers the same twice, each label is on exactly when its score is over its stored threshold, and
    # some of those decisions differ from one threshold of 0.5 for every label (so 0.5 in place of the stored
    # thresholds fails).
    combos = [[], ["red"], ["green"], ["blue"], ["red", "green"], ["green", "blue"], ["red", "blue"],
              ["red", "green", "blue"]]
    varied = [squares(combo, 7100 + 10 * seed + i) for seed in range(3) for i, combo in enumerate(combos)]
    stored = score(api, varied)
    assert score(api, varied) == stored
    differs = 0
    for result in stored.results:
        scores = {s.label: s.score for s in result.scores}
        assert set(result.predicted) == {label for label, v in scores.items() if v > thresholds[label]}
        differs += len(set(result.predicted) ^ {label for label, v in scores.items() if v > 0.5})
    print(f"\nstored thresholds {thresholds}: {differs} label decisions of {3 * len(varied)} differ from 0.5's")
    assert differs > 0, "no score lies between a stored threshold and 0.5: this check cannot tell them apart"
    everything, nothing, middle = score(api, images, 0.0), score(api, images, 1.0), score(api, images, 0.5)
    assert all(sorted(r.predicted) == ["blue", "green", "red"] for r in everything.results)
    assert all(not r.predicted for r in nothing.results)
    for result in middle.results:
        scores = {s.label: s.score for s in result.scores}
        assert set(result.predicted) == {label for label, v in scores.items() if v > 0.5}
        assert [scores[label] for label in result.predicted] == sorted(
            (scores[label] for label in result.predicted), reverse=True
        )


def overlay_size(heatmap: inference_pb2.Heatmap) -> tuple[int, int]:
    with Image.open(io.BytesIO(heatmap.overlay_png)) as image:
        assert image.format == "PNG"
        return image.size


def test_explain_single_label_by_name_and_top_prediction(api: Api, models: dict[str, models_pb2.Model]) -> None:
    images = [squares(["red"], 8000, (48, 40)), squares(["blue"], 8001, (30, 70))]
    named = explain(api, "shapes", images, "blue")
    top = explain(api, "shapes", images)
    answers = classify(api, "shapes", images).results
    predicted = [r.top[0].label for r in answers]
    assert [h.target for h in named.results] == ["blue", "blue"]
    assert [h.target for h in top.results] == predicted
    for response in (named, top):
        for heatmap, size, answer in zip(response.results, [(48, 40), (30, 70)], answers, strict=True):
            # 64 px: layer4's grid would be 2x2, so the map comes from layer3 (issue 25)
            assert (heatmap.grid_width, heatmap.grid_height, heatmap.layer, heatmap.warning) == (4, 4, "layer3", "")
            assert len(heatmap.grid) == 16 and all(0.0 <= v <= 1.0 for v in heatmap.grid)
            assert overlay_size(heatmap) == size
            served = next(c.probability for c in answer.top if c.label == heatmap.target)
            assert heatmap.probability == pytest.approx(served, abs=1e-5)  # Classify's probability


def test_explain_a_large_photo(server: ServerProcess, models: dict[str, models_pb2.Model], shared_data: Path) -> None:
    """A real 2592x1944 photo: its overlay PNG is over gRPC's default 4 MiB, which the replicas' answers met on
    their way back to the front door (INTERNAL) whatever max_message_bytes said."""
    photo = next((shared_data / "hymenoptera" / "val" / "ants").glob("ants-devouring-*.jpg")).read_bytes()
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(server.target, options=options) as channel:
        response = inference_pb2_grpc.InferenceStub(channel).Explain(inference_pb2.ExplainRequest(
            model=common_pb2.ModelRef(name="shapes"), images=[common_pb2.Image(data=photo)]), timeout=300)
    (heatmap,) = response.results
    assert overlay_size(heatmap) == (2592, 1944) and len(heatmap.overlay_png) > 4 << 20


def test_explain_multi_label_by_label(api: Api, models: dict[str, models_pb2.Model]) -> None:
    images = [squares(["green"], 9000), squares(["red", "blue"], 9001)]
    response = explain(api, "colours", images, "green")
    scores = [next(c.score for c in r.scores if c.label == "green") for r in score(api, images).results]
    assert [h.probability for h in response.results] == pytest.approx(scores, abs=1e-5)  # ScoreLabels' score
    assert [h.target for h in response.results] == ["green", "green"] and [h.name for h in response.results] == [
        "im0",
        "im1",
    ]
    assert all(len(h.grid) == h.grid_width * h.grid_height == 16 and h.layer == "layer3" for h in response.results)
    assert overlay_size(response.results[1]) == (48, 40)


def test_bad_requests_get_specific_codes(api: Api, models: dict[str, models_pb2.Model]) -> None:
    image = [squares(["red"], 1)]
    assert rpc_code(explain, api, "colours", image, "purple") == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(explain, api, "shapes", image, "green") == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(explain, api, "shapes", [b"not an image"]) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(explain, api, "nope", image) == grpc.StatusCode.NOT_FOUND
    assert rpc_code(score, api, image, 1.5) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(
        api.inference.ScoreLabels,
        inference_pb2.ScoreLabelsRequest(
            model=common_pb2.ModelRef(name="shapes"), images=[common_pb2.Image(data=image[0])]
        ),
    ) == (grpc.StatusCode.INVALID_ARGUMENT)
    assert rpc_code(classify, api, "colours", image) == grpc.StatusCode.INVALID_ARGUMENT


def test_task_and_dataset_layout_must_match(api: Api, models: dict[str, models_pb2.Model]) -> None:
    for task, model in (
        (training_pb2.MULTI_LABEL_CLASSIFICATION, "shapes"),
        (training_pb2.IMAGE_CLASSIFICATION, "colours"),
    ):
        request = training_pb2.CreateFineTuneJobRequest(
            task=task,
            model_name="mismatch",
            dataset_id=models[model].dataset_id,
            base=training_pb2.BaseModel(random_init=True),
            hyperparameters=HYPER,
        )
        assert rpc_code(api.training.CreateFineTuneJob, request, timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
