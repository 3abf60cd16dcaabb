"""What every command shares: the handler and registration types, and how results are printed (aligned tables,
``key: value`` details, or JSON with the ``.proto`` field names under ``--json``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Callable, Sequence
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from fineserve.v1 import training_pb2

from ..progress import format_metrics

if TYPE_CHECKING:
    from ..client import Client

Handler = Callable[["Client", argparse.Namespace, TextIO], int]
"""A command: runs against a client, writes to the stream and returns the exit status."""
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]
"""Registers a command (name, handler, help) and returns its parser for the command's own arguments."""


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Any, out: TextIO) -> None:
    # The SDK's typed records (Job, Dataset, Model) carry their message as .raw: print the message's JSON.
    value = [getattr(v, "raw", v) for v in value] if isinstance(value, list) else getattr(value, "raw", value)
    if isinstance(value, Message):
        value = to_dict(value)
    elif isinstance(value, list):
        value = [to_dict(v) if isinstance(v, Message) else v for v in value]
    out.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def emit(a: argparse.Namespace, out: TextIO, value: Any, human: Callable[[Any], str]) -> None:
    """``value`` as JSON under ``--json``, else as ``human`` formats it."""
    if a.json:
        print_json(value, out)
    else:
        out.write(human(value) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def write_table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Write a table of ``rows``; returns 0, the status of a command that printed it."""
    out.write(table(headers, rows) + "\n")
    return 0


def details(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in pairs)


def timestamp(message: Message, name: str) -> str:
    if not message.HasField(name):
        return "-"
    utc = timezone.utc  # noqa: UP017 (datetime.UTC needs Python 3.11; the SDK supports 3.10)
    return getattr(message, name).ToDatetime(tzinfo=utc).strftime("%Y-%m-%d %H:%M:%S")


def metrics(values: Any) -> str:
    return format_metrics(values, ", ") or "-"


def task_name(value: int) -> str:
    return training_pb2.Task.Name(value).lower()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def again(a: argparse.Namespace, *command: str) -> str:
    """The command line of another fineserve command against the same server: the connection options this one
    was given (never the API key, which may sit in shell history), then ``command``."""
    words = ["fineserve"]
    for flag in ("target", "ca_file", "client_cert", "client_key", "server_name"):
        value = getattr(a, flag, None)
        if value:
            words += ["--" + flag.replace("_", "-"), str(value)]
    if getattr(a, "tls", False):
        words.append("--tls")
    return shlex.join([*words, *command])


def key_values(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    """KEY=VALUE arguments as a dict (a value may itself hold "=")."""
    values = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be KEY=VALUE, got {pair!r}")
        values[key] = value
    return values
