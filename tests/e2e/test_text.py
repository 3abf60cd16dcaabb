"""ULMFiT through the service: a TEXT_CSV dataset -> LANGUAGE_MODEL job (auto_lr) -> TEXT_CLASSIFICATION job on its
encoder (after an LR range test for it) -> PredictText, and the errors a caller can make on the way."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import grpc
import pytest

from e2e.helpers import TERMINAL, Api, rpc_code, wait_for
from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, models_pb2, training_pb2

TINY = training_pb2.TextOptions(emb_size=16, hidden_size=24, n_layers=2, max_vocab=800, min_freq=2, bptt=16,
                                max_len=60)


def _text_zip(shared_data: Path, rows: int = 96) -> bytes:
    """The first rows of imdb_sample (is_valid kept), as an uploaded folder with texts.csv."""
    with open(shared_data / "imdb_sample" / "texts.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        picked = [r for _, r in zip(range(rows), reader, strict=False)]
    picked += [{"label": r["label"], "text": r["text"], "is_valid": "True"} for r in picked[:24]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["label", "text", "is_valid"])
    writer.writeheader()
    writer.writerows(picked)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("reviews/texts.csv", out.getvalue())
    return buf.getvalue()


def _upload(api: Api, data: bytes) -> datasets_pb2.Dataset:
    def requests():
        yield datasets_pb2.UploadDatasetRequest(header=datasets_pb2.UploadHeader(
            name="reviews", layout=datasets_pb2.TEXT_CSV, format=datasets_pb2.ZIP,
            sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)))
        yield datasets_pb2.UploadDatasetRequest(chunk=data)

    return api.datasets.UploadDataset(requests(), timeout=60)


def _job(api: Api, task: int, name: str, dataset_id: str, base: training_pb2.BaseModel,
         **hyper: object) -> training_pb2.Job:
    return api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=task, model_name=name, arch="awd_lstm", dataset_id=dataset_id, base=base,
        resources=common_pb2.Resources(cpu_only=True), text=TINY,
        hyperparameters=training_pb2.Hyperparameters(batch_size=16, precision=training_pb2.FP32,
                                                     **hyper)), timeout=30)


def test_text_csv_to_language_model_to_classifier_to_predict_text(api: Api, shared_data: Path) -> None:
    dataset = _upload(api, _text_zip(shared_data))
    assert dataset.summary.classes == ["negative", "positive"]
    assert dataset.summary.valid_items > 0

    lm_job = _job(api, training_pb2.LANGUAGE_MODEL, "reviews-lm", dataset.id,
                  training_pb2.BaseModel(random_init=True), freeze_epochs=0, epochs=1, auto_lr=True)
    lm_job = wait_for(api, lm_job.id, TERMINAL)
    assert lm_job.state == training_pb2.SUCCEEDED, lm_job.error
    assert lm_job.result.chosen_lr == lm_job.result.lr_finder.suggestions["valley"] > 0  # auto_lr's choice
    assert {"perplexity", "accuracy", "valid_loss"} <= set(lm_job.result.metrics)
    assert lm_job.result.metrics["perplexity"] > 1

    # A language model is not a classifier, and a classifier needs a language model (or random_init) base.
    ref = common_pb2.ModelRef(name="reviews-lm")
    assert rpc_code(api.inference.PredictText, inference_pb2.PredictTextRequest(model=ref, texts=["good"]),
                    timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(_job, api, training_pb2.TEXT_CLASSIFICATION, "c", dataset.id,
                    training_pb2.BaseModel(weights_file="nowhere.safetensors")) == grpc.StatusCode.INVALID_ARGUMENT

    # The LR range test for the classifier the next job trains (same base, options and first stage).
    lr_job = api.training.FindLearningRate(training_pb2.FindLearningRateRequest(
        task=training_pb2.TEXT_CLASSIFICATION, dataset_id=dataset.id, base=training_pb2.BaseModel(stored_model=ref),
        text=TINY, num_batches=12, resources=common_pb2.Resources(cpu_only=True),
        hyperparameters=training_pb2.Hyperparameters(batch_size=16, precision=training_pb2.FP32)), timeout=30)
    lr_job = wait_for(api, lr_job.id, TERMINAL)
    assert lr_job.state == training_pb2.SUCCEEDED, lr_job.error
    finder = lr_job.result.lr_finder
    assert 1 <= len(finder.points) <= 12 and {"valley", "steepest", "minimum_div_10"} <= set(finder.suggestions)
    assert all(a.lr < b.lr for a, b in zip(finder.points, finder.points[1:], strict=False))

    clas_job = _job(api, training_pb2.TEXT_CLASSIFICATION, "reviews-clas", dataset.id,
                    training_pb2.BaseModel(stored_model=ref), freeze_epochs=1, epochs=1)
    clas_job = wait_for(api, clas_job.id, TERMINAL)
    assert clas_job.state == training_pb2.SUCCEEDED, clas_job.error
    assert 0 <= clas_job.result.metrics["accuracy"] <= 1
    model = api.models.GetModel(models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name="reviews-clas")), timeout=30)
    assert model.task == training_pb2.TEXT_CLASSIFICATION and list(model.classes) == ["negative", "positive"]

    texts = ["A wonderful, moving film. I loved every minute!", "Dull and badly acted; a waste of time."]
    answer = api.inference.PredictText(inference_pb2.PredictTextRequest(
        model=common_pb2.ModelRef(name="reviews-clas"), texts=texts), timeout=120)
    assert len(answer.results) == 2
    for result in answer.results:
        assert {s.label for s in result.top} == {"negative", "positive"}
        assert sum(s.probability for s in result.top) == pytest.approx(1.0, abs=1e-4)
        assert result.top[0].probability >= result.top[1].probability
    assert rpc_code(api.inference.PredictText, inference_pb2.PredictTextRequest(
        model=common_pb2.ModelRef(name="reviews-clas"), texts=["fine", "  "]),
        timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
