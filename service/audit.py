"""The audit trail: one JSON line per mutating call (who, what, on which id, with what result).

Written by the interceptor (service/interceptors.py) for every call of MUTATING, including calls refused
before they reached a servicer (bad key, unknown enum value). The logger "fineserve.audit" does not
propagate to the root logger: its lines are bare JSON objects, on stderr or in the --audit-log file.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOGGER_NAME = "fineserve.audit"
log = logging.getLogger(LOGGER_NAME)

MUTATING = frozenset({
    "/fineserve.v1.Datasets/UploadDataset",
    "/fineserve.v1.Datasets/RegisterDataset",
    "/fineserve.v1.Datasets/DeleteDataset",
    "/fineserve.v1.Training/CreateFineTuneJob",
    "/fineserve.v1.Training/FindLearningRate",
    "/fineserve.v1.Training/CancelJob",
    "/fineserve.v1.Models/DeleteModel",
})

MAX_MESSAGE_CHARS = 300


def configure(path: str) -> None:
    """'-' (or empty): stderr; anything else: append to that file."""
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    if path and path != "-":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def target_of(method: str, request: Any, response: Any) -> dict[str, str]:
    """The id the call acted on (from the response for creations) plus a few identifying request fields."""
    name = method.rsplit("/", 1)[-1]
    out: dict[str, str] = {}
    if name in ("UploadDataset", "RegisterDataset", "CreateFineTuneJob", "FindLearningRate"):
        if response is not None:
            out["target"] = response.id
        if name == "UploadDataset" and request is not None:
            out["name"] = request.name
        elif name == "RegisterDataset" and request is not None:
            out.update(name=request.name, uri=request.uri)
        elif request is not None:
            out["dataset_id"] = request.dataset_id
            if name == "CreateFineTuneJob":
                out["model_name"] = request.model_name
    elif name in ("DeleteDataset", "CancelJob"):
        out["target"] = request.id if request is not None else ""
    elif name == "DeleteModel" and request is not None:
        out["target"] = f"{request.ref.name}/{request.ref.version or 'all'}"
    return {k: v[:MAX_MESSAGE_CHARS] for k, v in out.items()}


def record(*, method: str, tenant: str | None, key_id: str, peer: str, code: str, message: str,
           started: float, fields: dict[str, str]) -> None:
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "audit": method.rsplit("/", 1)[-1],
        "method": method,
        "tenant": tenant,
        "key": key_id or None,
        "peer": peer,
        **fields,
        "code": code,
        "ms": round((time.monotonic() - started) * 1000, 1),
    }
    if message and code != "OK":
        entry["message"] = message[:MAX_MESSAGE_CHARS]
    log.info(json.dumps(entry, ensure_ascii=False))
