"""Recommend and PredictTabular requests: checked here, answered by the serving replicas (typed answers)."""

from __future__ import annotations

from typing import Any

from fineserve.v1 import common_pb2, inference_pb2
from fineserve_common.answers import PerUser, Ratings, Recommended, RecommendQuery, ScoredItem, TabularPrediction
from fineserve_common.errors import InvalidArgument
from service.api.image_answers import scores

DEFAULT_K = 10
MAX_K = 1000
MAX_USERS = 1000
MAX_PAIRS = 10_000
MAX_ROWS = 1000
MAX_ID_CHARS = 256


def _ids(values: Any, what: str) -> list[str]:
    for n, value in enumerate(values):
        if not value or len(value) > MAX_ID_CHARS:
            raise InvalidArgument(f"{what}[{n}] must be 1-{MAX_ID_CHARS} characters")
    return list(values)


def recommend_query(request: inference_pb2.RecommendRequest) -> RecommendQuery:
    """The replica's query; INVALID_ARGUMENT for a missing query, bad k or oversized batches."""
    if not 0 <= request.k <= MAX_K:
        raise InvalidArgument(f"k must be in [0, {MAX_K}] (0 = {DEFAULT_K})")
    k, fallback = request.k or DEFAULT_K, request.popularity_fallback
    which = request.WhichOneof("query")
    if which is None:
        raise InvalidArgument("a query is required: user_id, users, similar_to_item, pairs or top_by_bias")
    if which == "user_id":
        return RecommendQuery("users", k, fallback, users=_ids([request.user_id], "user_id"))
    if which == "users":
        if not 1 <= len(request.users.ids) <= MAX_USERS:
            raise InvalidArgument(f"users.ids needs 1 to {MAX_USERS} user ids")
        return RecommendQuery("users", k, fallback, users=_ids(request.users.ids, "users.ids"))
    if which == "similar_to_item":
        return RecommendQuery("similar", k, fallback, item=_ids([request.similar_to_item], "similar_to_item")[0])
    if which == "pairs":
        pairs = request.pairs.pairs
        if not 1 <= len(pairs) <= MAX_PAIRS:
            raise InvalidArgument(f"pairs needs 1 to {MAX_PAIRS} (user_id, item_id) pairs")
        return RecommendQuery("pairs", k, fallback, pairs=list(zip(
            _ids([p.user_id for p in pairs], "pairs.user_id"), _ids([p.item_id for p in pairs], "pairs.item_id"),
            strict=True)))
    if not request.top_by_bias:
        raise InvalidArgument("top_by_bias must be true when it is the chosen query")
    return RecommendQuery("bias", k, fallback)


def _scored(items: list[ScoredItem]) -> list[inference_pb2.ScoredItem]:
    return [inference_pb2.ScoredItem(item_id=i.item_id, score=i.score, title=i.title) for i in items]


def recommend_response(ref: common_pb2.ModelRef, request: inference_pb2.RecommendRequest, query: RecommendQuery,
                       answer: PerUser | Recommended | Ratings) -> inference_pb2.RecommendResponse:
    """A user_id query answers in items/fallback, a users query in users; the others in items or ratings."""
    response = inference_pb2.RecommendResponse(model=ref)
    if isinstance(answer, PerUser):
        if request.WhichOneof("query") == "users":
            response.users.extend(
                inference_pb2.UserRecommendations(user_id=u, items=_scored(a.items), fallback=a.fallback)
                for u, a in zip(query.users, answer.users, strict=True))
            return response
        answer = answer.users[0]
    if isinstance(answer, Ratings):
        response.ratings.extend(answer.ratings)
    else:
        response.items.extend(_scored(answer.items))
    response.fallback = answer.fallback
    return response


def tabular_rows(request: inference_pb2.PredictTabularRequest) -> list[dict[str, str]]:
    if not 1 <= len(request.rows) <= MAX_ROWS:
        raise InvalidArgument(f"rows needs 1 to {MAX_ROWS} rows (column -> value maps)")
    if request.top_k < 0:
        raise InvalidArgument("top_k must be >= 0 (0 = default 5)")
    return [dict(row.values) for row in request.rows]


def tabular_response(ref: common_pb2.ModelRef,
                     results: list[TabularPrediction]) -> inference_pb2.PredictTabularResponse:
    return inference_pb2.PredictTabularResponse(model=ref, results=[
        inference_pb2.TabularPrediction(value=r.value, top=scores(r.top)) for r in results])
