"""Collaborative filtering and tabular models through real gRPC: register the data, train, Recommend and
PredictTabular, and refuse bad input with the right status codes. Quality numbers live in the engine tests;
these use small data and few epochs (the table goes in as a single-CSV upload, the ratings by registration)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from e2e.helpers import TERMINAL, Api, rpc_code, wait_for
from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, training_pb2
from fineserve_common.configs import CollabConfig, RatingsFormat, TabularConfig
from harness.launcher import ServerProcess
from worker.engine.tabular.family import TabularJob
from worker.engine.tabular.ratings import read_ratings, split_ratings

TABULAR = {"target": "salary", "categorical": ("workclass", "education", "occupation"),
           "continuous": ("age", "education-num", "hours-per-week")}
RMSE_GAIN = 0.08
"""The collab job's validation RMSE must be this much below the mean rating's on the same split: the same job in
the engine measured 0.861 against 1.011 (0.831 and 0.839 with seeds 1 and 2)."""
ACCURACY_GAIN = 0.015
"""The tabular job's validation accuracy must be this much above always answering the split's majority class: the
same job in the engine measured 0.799 against 0.769 (seeds 1 and 2: 0.806, 0.805); 6,512 validation rows measure
an accuracy to about +-0.005."""


def mean_rating_rmse(dataset_dir: Path) -> float:
    """Validation RMSE of the training ratings' mean, on the split a job with the default seed makes."""
    cfg = CollabConfig()
    data = read_ratings(dataset_dir, RatingsFormat())
    train, valid = split_ratings(data, cfg.valid_pct, cfg.seed, by_time=False)
    return float(np.sqrt(((data.ratings[valid] - data.ratings[train].mean()) ** 2).mean()))


def majority_share(dataset_dir: Path) -> float:
    """The share of the commonest class among the validation rows of the split a job with the default seed makes
    (the engine's own split): what always answering that class scores."""
    _, valid_y = TabularJob(TabularConfig(**TABULAR), dataset_dir, lambda event: None).valid_xy
    return float(valid_y.bincount().max()) / len(valid_y)


def _register(api: Api, path: Path, layout: int) -> datasets_pb2.Dataset:
    return api.datasets.RegisterDataset(datasets_pb2.RegisterDatasetRequest(
        name=path.name, layout=layout, uri=str(path)), timeout=60)


@pytest.fixture(scope="module")
def collab_job(server: ServerProcess, shared_data: Path) -> Iterator[training_pb2.Job]:
    api = Api(server.target)
    ds = _register(api, shared_data / "movie_lens_sample", datasets_pb2.RATINGS_CSV)
    assert ds.summary.train_items == 6031  # ratings, header left out
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.COLLABORATIVE_FILTERING, model_name="movies", dataset_id=ds.id,
        hyperparameters=training_pb2.Hyperparameters(epochs=3, batch_size=64),
        resources=common_pb2.Resources(cpu_only=True)), timeout=30)
    yield wait_for(api, job.id, TERMINAL, timeout=600)
    api.close()


@pytest.fixture(scope="module")
def tabular_job(server: ServerProcess, shared_data: Path) -> Iterator[training_pb2.Job]:
    api = Api(server.target)
    data = (shared_data / "adult_sample/adult.csv").read_bytes()
    header = datasets_pb2.UploadHeader(name="adult", layout=datasets_pb2.TABULAR_CSV, format=datasets_pb2.CSV,
                                       sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    chunks = [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    ds = api.datasets.UploadDataset(iter([datasets_pb2.UploadDatasetRequest(header=header),
                                          *(datasets_pb2.UploadDatasetRequest(chunk=c) for c in chunks)]), timeout=120)
    assert ds.source == "upload" and ds.summary.train_items == 32561
    job = api.training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.TABULAR, model_name="adult", dataset_id=ds.id,
        hyperparameters=training_pb2.Hyperparameters(epochs=1, batch_size=512),
        tabular=training_pb2.TabularOptions(target=TABULAR["target"], categorical=TABULAR["categorical"],
                                            continuous=TABULAR["continuous"]),
        resources=common_pb2.Resources(cpu_only=True)), timeout=30)
    yield wait_for(api, job.id, TERMINAL, timeout=600)
    api.close()


def _recommend(api: Api, **query: object) -> inference_pb2.RecommendResponse:
    return api.inference.Recommend(inference_pb2.RecommendRequest(
        model=common_pb2.ModelRef(name="movies"), **query), timeout=60)


def test_collab_train_and_recommend(api: Api, collab_job: training_pb2.Job, shared_data: Path) -> None:
    assert collab_job.state == training_pb2.SUCCEEDED, collab_job.error
    baseline = mean_rating_rmse(shared_data / "movie_lens_sample")
    assert collab_job.result.metrics["rmse"] < baseline - RMSE_GAIN, (collab_job.result.metrics, baseline)
    rated = {line.split(",")[1] for line in (shared_data / "movie_lens_sample/ratings.csv").read_text().splitlines()[1:]
             if line.split(",")[0] == "73"}
    one = _recommend(api, user_id="73", k=5)
    assert len(one.items) == 5 and not one.fallback
    assert not {i.item_id for i in one.items} & rated
    batch = _recommend(api, users=inference_pb2.UserIds(ids=["73", "561"]), k=5)
    assert [u.user_id for u in batch.users] == ["73", "561"]
    assert [(i.item_id, round(i.score, 5)) for i in batch.users[0].items] == \
        [(i.item_id, round(i.score, 5)) for i in one.items]
    pair = _recommend(api, pairs=inference_pb2.UserItemPairs(pairs=[inference_pb2.UserItem(user_id="73",
                                                                                          item_id="1097")]))
    assert len(pair.ratings) == 1 and 0 < pair.ratings[0] < 6
    assert len(_recommend(api, similar_to_item="1097", k=3).items) == 3
    assert len(_recommend(api, top_by_bias=True, k=4).items) == 4


def test_collab_unknown_ids_and_bad_input(api: Api, collab_job: training_pb2.Job) -> None:
    with pytest.raises(grpc.RpcError) as e:
        _recommend(api, user_id="nobody")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "nobody" in e.value.details()
    fallback = _recommend(api, user_id="nobody", popularity_fallback=True, k=3)
    assert fallback.fallback and len(fallback.items) == 3
    assert rpc_code(_recommend, api, similar_to_item="no-such-item") == grpc.StatusCode.NOT_FOUND
    assert rpc_code(_recommend, api) == grpc.StatusCode.INVALID_ARGUMENT  # no query
    assert rpc_code(_recommend, api, user_id="73", k=-1) == grpc.StatusCode.INVALID_ARGUMENT
    wrong_task = inference_pb2.PredictTabularRequest(model=common_pb2.ModelRef(name="movies"), rows=[
        inference_pb2.TabularRow(values={"age": "30"})])
    assert rpc_code(api.inference.PredictTabular, wrong_task, timeout=30) == grpc.StatusCode.INVALID_ARGUMENT


def test_tabular_train_and_predict(api: Api, tabular_job: training_pb2.Job, shared_data: Path) -> None:
    assert tabular_job.state == training_pb2.SUCCEEDED, tabular_job.error
    majority = majority_share(shared_data / "adult_sample")
    assert tabular_job.result.metrics["accuracy"] > majority + ACCURACY_GAIN, (tabular_job.result.metrics, majority)
    rows = [{"workclass": "Private", "education": "Doctorate", "occupation": "Prof-specialty", "age": "50",
             "education-num": "16", "hours-per-week": "60"},
            {"workclass": "Never-seen-before", "age": "", "education": "HS-grad"}]  # unknown category, missing
    resp = api.inference.PredictTabular(inference_pb2.PredictTabularRequest(
        model=common_pb2.ModelRef(name="adult"), rows=[inference_pb2.TabularRow(values=r) for r in rows], top_k=2),
        timeout=60)
    assert len(resp.results) == 2
    for result in resp.results:
        assert {s.label for s in result.top} == {"<50k", ">=50k"}
        assert abs(sum(s.probability for s in result.top) - 1) < 1e-5
    assert resp.results[0].top[0].label == ">=50k"
    bad = inference_pb2.PredictTabularRequest(model=common_pb2.ModelRef(name="adult"), rows=[
        inference_pb2.TabularRow(values={"agee": "30"})])
    with pytest.raises(grpc.RpcError) as e:
        api.inference.PredictTabular(bad, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "agee" in e.value.details()


def test_embedding_job_requests_are_checked(api: Api, collab_job: training_pb2.Job) -> None:
    ds_id = collab_job.request.dataset_id
    request = training_pb2.CreateFineTuneJobRequest(task=training_pb2.TABULAR, model_name="x", dataset_id=ds_id,
                                                    tabular=training_pb2.TabularOptions(target="rating"))
    assert rpc_code(api.training.CreateFineTuneJob, request, timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
    request = training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.COLLABORATIVE_FILTERING, model_name="x", dataset_id=ds_id,
        collab=training_pb2.CollabOptions(items_file="../../etc/passwd"))
    assert rpc_code(api.training.CreateFineTuneJob, request, timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
    request = training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.COLLABORATIVE_FILTERING, model_name="x", dataset_id=ds_id,
        hyperparameters=training_pb2.Hyperparameters(image_size=64))
    assert rpc_code(api.training.CreateFineTuneJob, request, timeout=30) == grpc.StatusCode.INVALID_ARGUMENT
