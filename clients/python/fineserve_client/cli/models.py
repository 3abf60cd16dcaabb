"""The model commands: models, model, delete-model."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from fineserve.v1 import models_pb2

from ..progress import format_bytes
from .output import AddCommand, details, emit, metrics, print_json, task_name, timestamp, to_dict, write_table

if TYPE_CHECKING:
    from ..client import Client


def _model_details(model: models_pb2.Model) -> str:
    pairs: list[tuple[str, Any]] = [
        ("model", f"{model.ref.name}/{model.ref.version}"),
        ("task", task_name(model.task)),
        ("arch", model.arch or "-"),
        ("base", model.base or "-"),
        ("classes", f"{len(model.classes)}: {', '.join(model.classes)}" if model.classes else "-"),
        ("metrics", metrics(model.metrics)),
        ("job", model.job_id or "-"),
        ("dataset", model.dataset_id or "-"),
        ("size", format_bytes(model.size_bytes)),
        ("created", timestamp(model, "created_at")),
        ("serving", f"loaded on {model.loaded_replicas} replica(s)" if model.loaded_replicas
         else "not loaded (the next call loads it)"),
    ]
    return details(pairs)


def _models(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    items = c.list_models(name=a.name)
    if a.json:
        print_json(items, out)
        return 0
    rows = [(m.ref.name, m.ref.version, task_name(m.task), m.arch or "-", len(m.classes), metrics(m.metrics),
             m.base or "-", timestamp(m, "created_at")) for m in items]
    return write_table(out, ["NAME", "VERSION", "TASK", "ARCH", "CLASSES", "METRICS", "BASE", "CREATED"], rows)


def _model(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    emit(a, out, c.get_model(a.model), _model_details)
    return 0


def _delete_model(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    deleted = c.delete_model(a.model)
    if a.json:
        print_json({"deleted": [to_dict(r) for r in deleted]}, out)
    else:
        out.write("deleted " + (", ".join(f"{r.name}/{r.version}" for r in deleted) or "nothing") + "\n")
    return 0


def add_commands(command: AddCommand) -> None:
    p = command("models", _models, "list models")
    p.add_argument("--name", help="only versions of this name")

    p = command("model", _model, "show a model (latest version without /VERSION)")
    p.add_argument("model", metavar="NAME[/VERSION]")

    p = command("delete-model", _delete_model, "delete a model version (every version without /VERSION)")
    p.add_argument("model", metavar="NAME[/VERSION]")
