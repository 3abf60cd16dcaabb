"""What the serving replicas do for Recommend and tabular predictions: typed queries in, typed answers (or a
Refused) out (fineserve_common.answers), so the front door never needs torch."""

from __future__ import annotations

from typing import Any

from fineserve_common.answers import (
    PerUser,
    Ratings,
    Recommended,
    RecommendQuery,
    Refused,
    ScoredItem,
    TabularPrediction,
)
from fineserve_common.errors import FailedPrecondition, InvalidArgument, NotFound


def _items(model: Any, scored: list[tuple[str, float]]) -> list[ScoredItem]:
    return [ScoredItem(item, score, model.title(item)) for item, score in scored]


def recommend(model: Any, query: RecommendQuery) -> PerUser | Recommended | Ratings | Refused:
    """A users query answers PerUser, a similar or bias query Recommended, a pairs query Ratings."""
    from worker.engine import EngineError, Recommender, UnknownId

    if not isinstance(model, Recommender):
        return Refused.of(InvalidArgument("Recommend needs a COLLABORATIVE_FILTERING model"))
    k, fallback = query.k, query.fallback
    try:
        if query.kind == "users":
            recs = model.recommend(query.users, k, fallback)
            return PerUser([Recommended(_items(model, r.items), r.fallback) for r in recs])
        if query.kind == "similar":
            rec = model.similar(query.item, k, fallback)
            return Recommended(_items(model, rec.items), rec.fallback)
        if query.kind == "pairs":
            ratings, used = model.predict_pairs(query.pairs, fallback)
            return Ratings(ratings, used)
        if query.kind == "bias":
            return Recommended(_items(model, model.top_by_bias(k)), False)
    except UnknownId as e:
        return Refused.of(NotFound(str(e)))
    except EngineError as e:
        return Refused.of(FailedPrecondition(str(e)))
    return Refused.of(InvalidArgument(f"unknown recommend query kind {query.kind!r}"))


def predict_table(model: Any, rows: list[dict[str, str]], top_k: int) -> list[TabularPrediction] | Refused:
    from worker.engine import InvalidRow, TabularPredictor

    if not isinstance(model, TabularPredictor):
        return Refused.of(InvalidArgument("PredictTabular needs a TABULAR model"))
    try:
        return [TabularPrediction(**prediction) for prediction in model.predict(rows, top_k)]
    except InvalidRow as e:
        return Refused.of(InvalidArgument(str(e)))

