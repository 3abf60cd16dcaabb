"""predict_text() and the predict-text command against a fake Inference service."""

from __future__ import annotations

import json

import grpc
import pytest

from fineserve.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from fineserve_client import Client, InvalidArgument
from fineserve_client.cli import main


class TextInference(inference_pb2_grpc.InferenceServicer):
    """Labels each text with its first word (probability 0.9), refusing empty texts as the service does."""

    def __init__(self) -> None:
        self.requests: list[inference_pb2.PredictTextRequest] = []

    def PredictText(self, request, context):
        self.requests.append(request)
        if any(not t.strip() for t in request.texts):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        results = [inference_pb2.TextPrediction(top=[
            inference_pb2.ClassScore(label=t.split()[0], probability=0.9),
            inference_pb2.ClassScore(label="other", probability=0.1)][: request.top_k or 2]) for t in request.texts]
        return inference_pb2.PredictTextResponse(model=common_pb2.ModelRef(name=request.model.name, version=3),
                                                 results=results)


def test_predict_text_batches_in_order(serve):
    servicer = TextInference()
    with Client(serve(servicer)) as client:
        results = client.predict_text("reviews", ["good film", "bad acting", "great cast"], batch_size=2)
        assert [r.label for r in results] == ["good", "bad", "great"]
        assert [r.name for r in results] == ["text[0]", "text[1]", "text[2]"]
        assert results[0].top == [("good", pytest.approx(0.9)), ("other", pytest.approx(0.1))]
        assert results[0].model == "reviews/3"
        assert client.predict_text("reviews/2", "fine one", top_k=1)[0].top == [("fine", pytest.approx(0.9))]
        with pytest.raises(InvalidArgument):
            client.predict_text("reviews", ["ok", " "])
    assert [len(r.texts) for r in servicer.requests[:2]] == [2, 1]
    assert servicer.requests[2].model == common_pb2.ModelRef(name="reviews", version=2)


def test_predict_text_command_json(serve, capsys):
    assert main(["predict-text", "reviews", "lovely movie", "--json", "--target", serve(TextInference())]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["file"] == "text[0]" and data[0]["top"][0]["label"] == "lovely"
