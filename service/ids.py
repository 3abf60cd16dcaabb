"""Identifiers and names the API hands out or accepts."""

from __future__ import annotations

import re
import secrets

from google.protobuf.message import Message

from fineserve_common.errors import InvalidArgument
from fineserve_common.names import check_id, clip

# \Z, not $: "$" would also match before a trailing newline ("pets\n").
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")


ID_FIELDS = frozenset({"id", "dataset_id", "job_id", "request_id", "model_name"})
"""String fields of any request that hold an id or name this service hands out or keys on."""
NAME_FIELDS = frozenset({"fineserve.v1.ModelRef", "fineserve.v1.ListModelsRequest"})
"""Messages whose `name` field is a model name."""


def check_request_ids(message: Message, prefix: str = "") -> None:
    """Every id a request carries, however deeply, within MAX_ID_CHARS and printable: INVALID_ARGUMENT naming
    the field, before any servicer looks it up (and quotes it in a NOT_FOUND)."""
    for fd, value in message.ListFields():
        if fd.type == fd.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry:
            for i, sub in enumerate(value if fd.is_repeated else [value]):
                check_request_ids(sub, f"{prefix}{fd.name}[{i}]." if fd.is_repeated else f"{prefix}{fd.name}.")
        elif fd.type == fd.TYPE_STRING and not fd.is_repeated and (
                fd.name in ID_FIELDS or (fd.name == "name" and message.DESCRIPTOR.full_name in NAME_FIELDS)):
            check_id(prefix + fd.name, value)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def page_bounds(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) from a PageRequest; tokens are plain offsets (datasets/jobs/models only grow)."""
    limit = 50 if page_size <= 0 else min(page_size, 500)
    if not page_token:
        return 0, limit
    if not (page_token.isascii() and page_token.isdigit()) or len(page_token) > 12:
        raise InvalidArgument(f"page_token {clip(page_token)} is not a token this server issued")
    return int(page_token), limit


def next_token(offset: int, limit: int, returned: int) -> str:
    return str(offset + limit) if returned == limit else ""
