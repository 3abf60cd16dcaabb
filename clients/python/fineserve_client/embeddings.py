"""Requests and results of the embedding models: recommendations (collaborative filtering) and tabular
predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fineserve.v1 import common_pb2, inference_pb2

from .results import LabelProbability, answered, top_of


@dataclass(frozen=True)
class ScoredItem:
    item_id: str
    score: float
    """Predicted rating (user queries), cosine similarity (similar items), bias (top by bias) or, from the
    popularity fallback, the item's mean rating."""
    title: str = ""


@dataclass(frozen=True)
class Recommendations:
    """What one Recommend call answered; which fields are filled depends on the query."""

    items: list[ScoredItem] = field(default_factory=list)
    """user_id, similar_to and top_by_bias queries."""
    users: dict[str, Recommendations] = field(default_factory=dict)
    """users queries: user id -> that user's items, in request order."""
    ratings: list[float] = field(default_factory=list)
    """pairs queries: predicted ratings in request order."""
    fallback: bool = False
    """The popularity fallback answered (unknown user or item)."""
    model: str = ""


@dataclass(frozen=True)
class TabularPrediction:
    top: list[LabelProbability] = field(default_factory=list)
    """Classification: (class, probability), most probable first."""
    value: float | None = None
    """Regression: the predicted number."""

    @property
    def label(self) -> str | None:
        return self.top[0][0] if self.top else None


def recommend_request(ref: common_pb2.ModelRef, user_id: str | None, users: Sequence[str] | None,
                      similar_to: str | None, pairs: Sequence[tuple[str, str]] | None, top_by_bias: bool, k: int,
                      popularity_fallback: bool) -> inference_pb2.RecommendRequest:
    given = [name for name, value in (("user_id", user_id), ("users", users), ("similar_to", similar_to),
                                      ("pairs", pairs), ("top_by_bias", top_by_bias or None)) if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of user_id, users, similar_to, pairs, top_by_bias (got {given or 'none'})")
    request = inference_pb2.RecommendRequest(model=ref, k=k, popularity_fallback=popularity_fallback)
    if user_id is not None:
        request.user_id = user_id
    elif users is not None:
        if isinstance(users, str):
            raise TypeError("users must be a list of user ids; use user_id for one")
        request.users.ids.extend(users)
    elif similar_to is not None:
        request.similar_to_item = similar_to
    elif pairs is not None:
        request.pairs.pairs.extend(inference_pb2.UserItem(user_id=u, item_id=i) for u, i in pairs)
    else:
        request.top_by_bias = True
    return request


def _items(items: Sequence[inference_pb2.ScoredItem]) -> list[ScoredItem]:
    return [ScoredItem(i.item_id, i.score, i.title) for i in items]


def recommendations(response: inference_pb2.RecommendResponse) -> Recommendations:
    model = answered(response)
    users = {u.user_id: Recommendations(items=_items(u.items), fallback=u.fallback, model=model)
             for u in response.users}
    return Recommendations(items=_items(response.items), users=users, ratings=list(response.ratings),
                           fallback=response.fallback or any(u.fallback for u in users.values()), model=model)


def tabular_request(ref: common_pb2.ModelRef, rows: Sequence[Mapping[str, Any]],
                    top_k: int) -> inference_pb2.PredictTabularRequest:
    if isinstance(rows, Mapping):
        raise TypeError("rows must be a list of column -> value mappings")
    return inference_pb2.PredictTabularRequest(model=ref, top_k=top_k, rows=[
        inference_pb2.TabularRow(values={str(k): "" if v is None else str(v) for k, v in row.items()})
        for row in rows])


def tabular_predictions(response: inference_pb2.PredictTabularResponse) -> list[TabularPrediction]:
    return [TabularPrediction(top=top_of(r.top), value=None if r.top else r.value)
            for r in response.results]

