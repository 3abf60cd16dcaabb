"""ULMFiT through the service: a TEXT_CSV dataset -> LANGUAGE_MODEL job (auto_lr) -> TEXT_CLASSIFICATION job on its
encoder (after an LR range test for it) -> PredictText, and the errors a caller can make on the way."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import grpc
import pytest

from e2e.helpers import TERMINAL, Api, rpc_code, wait_for
from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, models_pb2, training_pb2
from fineserve_common.configs import TextConfig
from harness.launcher import ServerProcess
from worker.engine import load_served_model
from worker.engine.families import open_job
from worker.engine.train_loop import ignore_event

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


def _stored(server: ServerProcess, name: str) -> Path:
    return server.data_dir / "models" / "default" / name / "1"


def test_text_csv_to_language_model_to_classifier_to_predict_text(api: Api, server: ServerProcess,
                                                                  shared_data: Path, tmp_path: Path) -> None:
    data = _text_zip(shared_data)
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)  # the same files, for the engine in this process
    dataset = _upload(api, data)
    assert dataset.summary.classes == ["negative", "positive"]
    assert dataset.summary.valid_items > 0

    lm_job = _job(api, training_pb2.LANGUAGE_MODEL, "reviews-lm", dataset.id,
                  training_pb2.BaseModel(random_init=True), freeze_epochs=0, epochs=1, auto_lr=True)
    lm_job = wait_for(api, lm_job.id, TERMINAL)
    assert lm_job.state == training_pb2.SUCCEEDED, lm_job.error
    assert lm_job.result.chosen_lr == lm_job.result.lr_finder.suggestions["valley"] > 0  # auto_lr's choice
    assert {"perplexity", "accuracy", "valid_loss"} <= set(lm_job.result.metrics)
    # Perplexity below the uniform guess over the model's vocabulary (an untrained model's), which one epoch of
    # this tiny model reaches (about 510 of 800); the unigram baseline (about 80 here) needs real training, which
    # tests/engine/test_engine_ulmfit.py does.
    vocab = json.loads((_stored(server, "reviews-lm") / "card.json").read_text())["vocab"]
    assert 1 < lm_job.result.metrics["perplexity"] < len(vocab), (lm_job.result.metrics, len(vocab))

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
    model = api.models.GetModel(models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name="reviews-clas")), timeout=30)
    assert model.task == training_pb2.TEXT_CLASSIFICATION and list(model.classes) == ["negative", "positive"]

    # The stored model, run by the engine in this process on the job's validation texts, scores what the job
    # reported (stored labels swapped would score 1 - accuracy: the validation set is 14 negative, 10 positive).
    stored = load_served_model(_stored(server, "reviews-clas"), device="cpu")
    card = json.loads((_stored(server, "reviews-clas") / "card.json").read_text())
    valid = open_job(TextConfig.from_dict(card["hyperparameters"]), tmp_path / "reviews", ignore_event).data.valid
    top = stored.predict([r.text for r in valid], 1)
    accuracy = sum(t[0][0] == r.label for t, r in zip(top, valid, strict=True)) / len(valid)
    assert accuracy == pytest.approx(clas_job.result.metrics["accuracy"], abs=1e-9), (accuracy, clas_job.result)

    # PredictText answers what the engine answers for the same model and texts.
    texts = ["A wonderful, moving film. I loved every minute!", "Dull and badly acted; a waste of time.",
             *(r.text for r in valid[:6])]
    answer = api.inference.PredictText(inference_pb2.PredictTextRequest(
        model=common_pb2.ModelRef(name="reviews-clas"), texts=texts), timeout=120)
    expected = stored.predict(texts, 0)
    assert len(answer.results) == len(texts)
    for result, engine in zip(answer.results, expected, strict=True):
        assert [(s.label, s.probability) for s in result.top] == [(label, pytest.approx(p, abs=1e-5))
                                                                  for label, p in engine]
        assert {s.label for s in result.top} == {"negative", "positive"}
        assert sum(s.probability for s in result.top) == pytest.approx(1.0, abs=1e-4)
    assert rpc_code(api.inference.PredictText, inference_pb2.PredictTextRequest(
        model=common_pb2.ModelRef(name="reviews-clas"), texts=["fine", "  "]),
        timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
