"""SDK and CLI for the embedding models against fake servers: Recommend and PredictTabular requests and
results, and the options of collaborative-filtering and tabular jobs."""

from __future__ import annotations

import json

import grpc
import pytest

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc, training_pb2, training_pb2_grpc
from fineserve_client import Client, NotFound
from fineserve_client.cli import main


class FakeEmbeddings(inference_pb2_grpc.InferenceServicer):
    def __init__(self) -> None:
        self.requests: list = []

    def Recommend(self, request, context):
        self.requests.append(request)
        ref = common_pb2.ModelRef(name=request.model.name, version=2)
        which = request.WhichOneof("query")
        if which == "user_id" and request.user_id == "ghost" and not request.popularity_fallback:
            context.abort(grpc.StatusCode.NOT_FOUND, "user 'ghost' is not in the model's training data")
        items = [inference_pb2.ScoredItem(item_id=str(n), score=5.0 - n, title=f"Movie {n}")
                 for n in range(request.k)]
        if which == "users":
            return inference_pb2.RecommendResponse(model=ref, users=[
                inference_pb2.UserRecommendations(user_id=u, items=items) for u in request.users.ids])
        if which == "pairs":
            return inference_pb2.RecommendResponse(model=ref, ratings=[3.5] * len(request.pairs.pairs))
        return inference_pb2.RecommendResponse(model=ref, items=items, fallback=request.user_id == "ghost")

    def PredictTabular(self, request, context):
        self.requests.append(request)
        return inference_pb2.PredictTabularResponse(model=request.model, results=[
            inference_pb2.TabularPrediction(top=[inference_pb2.ClassScore(label=row.values.get("age", "?"),
                                                                          probability=0.9)])
            for row in request.rows])


class RecordingTraining(training_pb2_grpc.TrainingServicer):
    def __init__(self) -> None:
        self.requests: list = []

    def CreateFineTuneJob(self, request, context):
        self.requests.append(request)
        return training_pb2.Job(id="job-1", state=training_pb2.QUEUED, request=request)


def test_recommend_queries(serve) -> None:
    fake = FakeEmbeddings()
    with Client(serve(fake)) as fs:
        rec = fs.recommend("movies", "7", k=3)
        assert [i.item_id for i in rec.items] == ["0", "1", "2"] and rec.items[0].title == "Movie 0"
        assert rec.model == "movies/2" and not rec.fallback
        batch = fs.recommend("movies", users=["1", "2"], k=2)
        assert list(batch.users) == ["1", "2"] and len(batch.users["2"].items) == 2
        assert fs.recommend("movies", pairs=[("1", "50"), ("2", "9")]).ratings == [3.5, 3.5]
        assert fs.recommend("movies", "ghost", k=1, popularity_fallback=True).fallback
        with pytest.raises(NotFound, match="ghost"):
            fs.recommend("movies", "ghost")
        with pytest.raises(ValueError, match="exactly one"):
            fs.recommend("movies", "7", similar_to="50")
    assert fake.requests[1].users.ids == ["1", "2"]
    assert fake.requests[2].pairs.pairs[1].item_id == "9"


def test_predict_tabular_sends_rows_as_maps(serve) -> None:
    fake = FakeEmbeddings()
    with Client(serve(fake)) as fs:
        out = fs.predict_tabular("adult", [{"age": 30, "workclass": None}, {"age": "41"}], top_k=1)
    assert [p.label for p in out] == ["30", "41"]
    assert dict(fake.requests[0].rows[0].values) == {"age": "30", "workclass": ""}


def test_embedding_job_options(serve) -> None:
    training = RecordingTraining()
    with Client(serve(training)) as fs:
        fs.create_fine_tune_job("ds-1", "adult", task="tabular", epochs=2,
                                tabular={"target": "salary", "categorical": ["workclass"], "regression": False})
        fs.create_fine_tune_job("ds-2", "movies", task="collaborative_filtering", arch="neural",
                                collab={"items_file": "u.item", "layers": [64, 32]})
    tab, collab = training.requests
    assert tab.task == training_pb2.TABULAR and not tab.HasField("base") and tab.arch == ""
    assert tab.tabular.target == "salary" and list(tab.tabular.categorical) == ["workclass"]
    assert tab.tabular.HasField("regression") and not tab.tabular.regression
    assert collab.arch == "neural" and list(collab.collab.layers) == [64, 32]


def test_cli_recommend_and_train_options(serve, capsys) -> None:
    fake, training = FakeEmbeddings(), RecordingTraining()
    target = serve(fake, training)
    assert main(["--target", target, "recommend", "movies", "--user", "7", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "Movie 1" in out and out.splitlines()[0].split() == ["USER", "RANK", "ITEM", "SCORE", "TITLE"]
    assert main(["--target", target, "recommend", "movies", "--pair", "1:50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ratings"] == [3.5]
    assert main(["--target", target, "predict-tabular", "adult", "--row", "age=52,workclass=Private"]) == 0
    assert "52" in capsys.readouterr().out
    assert main(["--target", target, "train", "--task", "tabular", "--dataset", "ds-1", "--model", "adult",
                 "--option", "target=salary", "--option", "continuous=age,fnlwgt", "--no-wait"]) == 0
    assert list(training.requests[0].tabular.continuous) == ["age", "fnlwgt"]
    assert main(["--target", target, "train", "--task", "tabular", "--dataset", "ds-1", "--model", "adult",
                 "--option", "colour=red", "--no-wait"]) == 2
