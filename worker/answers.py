"""The replicas' answers for input a model cannot take: the front door turns them into gRPC statuses."""

from __future__ import annotations

from typing import Any


def invalid(message: str) -> dict[str, Any]:
    return {"error": {"code": "INVALID_ARGUMENT", "message": message}}
