"""What the serving replicas do for Recommend and tabular predictions: plain-dict queries in, plain-dict answers
(or {"error": {code, message}}) out, so the front door never needs torch."""

from __future__ import annotations

from typing import Any

Answer = dict[str, Any]


def error(code: str, message: str) -> Answer:
    return {"error": {"code": code, "message": message}}


def _items(model: Any, scored: list[tuple[str, float]]) -> list[list[Any]]:
    return [[item, score, model.title(item)] for item, score in scored]


def recommend(model: Any, query: dict[str, Any]) -> Answer:
    """query: {"kind": "users" | "similar" | "pairs" | "bias", "users": [...], "item": str, "pairs": [[u, i]],
    "k": int, "fallback": bool}. Answers {"users": [{"items", "fallback"}]} | {"items", "fallback"} |
    {"ratings", "fallback"}."""
    from worker.engine import EngineError, Recommender, UnknownId

    if not isinstance(model, Recommender):
        return error("INVALID_ARGUMENT", "Recommend needs a COLLABORATIVE_FILTERING model")
    kind, k, fallback = query["kind"], query.get("k", 10), query.get("fallback", False)
    try:
        if kind == "users":
            recs = model.recommend(query["users"], k, fallback)
            return {"users": [{"items": _items(model, r.items), "fallback": r.fallback} for r in recs]}
        if kind == "similar":
            rec = model.similar(query["item"], k, fallback)
            return {"items": _items(model, rec.items), "fallback": rec.fallback}
        if kind == "pairs":
            ratings, used = model.predict_pairs([tuple(p) for p in query["pairs"]], fallback)
            return {"ratings": ratings, "fallback": used}
        if kind == "bias":
            return {"items": _items(model, model.top_by_bias(k)), "fallback": False}
    except UnknownId as e:
        return error("NOT_FOUND", str(e))
    except EngineError as e:
        return error("FAILED_PRECONDITION", str(e))
    return error("INVALID_ARGUMENT", f"unknown recommend query kind {kind!r}")


def predict_table(model: Any, rows: list[dict[str, str]], top_k: int) -> Answer:
    from worker.engine import InvalidRow, TabularPredictor

    if not isinstance(model, TabularPredictor):
        return error("INVALID_ARGUMENT", "PredictTabular needs a TABULAR model")
    try:
        return {"results": model.predict(rows, top_k), "regression": model.schema.regression}
    except InvalidRow as e:
        return error("INVALID_ARGUMENT", str(e))
