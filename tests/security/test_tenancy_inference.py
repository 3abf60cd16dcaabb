"""Tenancy on every inference RPC, not only Classify: alice's model name, called by bob, is NOT_FOUND with the
message a name that never existed gets (never INVALID_ARGUMENT for the wrong task, which would tell bob that
alice has a model of that name)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from fineserve.v1 import common_pb2, inference_pb2
from security.conftest import SecureServer, Trained


def test_every_inference_rpc_answers_another_tenants_model_as_unknown(secure: SecureServer,
                                                                      alice_model: Trained) -> None:
    bob = secure.stubs("bob")
    images = [common_pb2.Image(data=alice_model.images[0], name="x")]
    calls: dict[str, Callable[[common_pb2.ModelRef], tuple[grpc.StatusCode, str]]] = {
        "ScoreLabels": lambda r: bob.code(bob.inference.ScoreLabels,
                                          inference_pb2.ScoreLabelsRequest(model=r, images=images)),
        "Segment": lambda r: bob.code(bob.inference.Segment, inference_pb2.SegmentRequest(model=r, images=images)),
        "Explain": lambda r: bob.code(bob.inference.Explain, inference_pb2.ExplainRequest(model=r, images=images)),
        "PredictText": lambda r: bob.code(bob.inference.PredictText,
                                          inference_pb2.PredictTextRequest(model=r, texts=["a review"])),
        "Recommend": lambda r: bob.code(bob.inference.Recommend, inference_pb2.RecommendRequest(model=r, user_id="1")),
        "PredictTabular": lambda r: bob.code(bob.inference.PredictTabular, inference_pb2.PredictTabularRequest(
            model=r, rows=[inference_pb2.TabularRow(values={"a": "1"})])),
    }
    for what, call in calls.items():
        for version in (0, 1):
            code, details = call(common_pb2.ModelRef(name="pets", version=version))
            unknown_code, unknown = call(common_pb2.ModelRef(name="never-was", version=version))
            assert code == unknown_code == grpc.StatusCode.NOT_FOUND, f"{what} v{version}: {code.name} {details}"
            assert details.replace("pets", "NAME") == unknown.replace("never-was", "NAME"), (what, details, unknown)
    # alice herself reaches her model through the same RPCs (Explain serves a classifier).
    alice = secure.stubs("alice")
    answer = alice.call(alice.inference.Explain, inference_pb2.ExplainRequest(
        model=common_pb2.ModelRef(name="pets"), images=images))
    assert len(answer.results) == 1
