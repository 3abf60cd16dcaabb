"""Recommend's limits (README: k <= 1000, 1000 users, 10000 pairs per call) through gRPC: over a limit is
INVALID_ARGUMENT naming it, checked at the door before the model is looked up; at the limit the request passes
the check (and then meets the unknown model's NOT_FOUND)."""

from __future__ import annotations

import grpc
import pytest

from e2e.helpers import Api
from fineserve.v1 import common_pb2, inference_pb2

REF = common_pb2.ModelRef(name="no-such-recommender")


def _users(n: int) -> inference_pb2.UserIds:
    return inference_pb2.UserIds(ids=[f"u{i}" for i in range(n)])


def _pairs(n: int) -> inference_pb2.UserItemPairs:
    return inference_pb2.UserItemPairs(pairs=[inference_pb2.UserItem(user_id=f"u{i}", item_id="i") for i in range(n)])


@pytest.mark.parametrize(("over", "at", "named"), [
    ({"user_id": "u", "k": 1001}, {"user_id": "u", "k": 1000}, "k must be in [0, 1000]"),
    ({"users": _users(1001)}, {"users": _users(1000)}, "1 to 1000 user ids"),
    ({"pairs": _pairs(10_001)}, {"pairs": _pairs(10_000)}, "1 to 10000 (user_id, item_id) pairs"),
])
def test_over_a_recommend_limit_is_refused_at_the_door(api: Api, over: dict, at: dict, named: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.inference.Recommend(inference_pb2.RecommendRequest(model=REF, **over), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and named in err.value.details(), err.value
    with pytest.raises(grpc.RpcError) as err:
        api.inference.Recommend(inference_pb2.RecommendRequest(model=REF, **at), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value
