"""Identifiers and names the API hands out or accepts."""

from __future__ import annotations

import re
import secrets

from fineserve_common.errors import InvalidArgument

# \Z, not $: "$" would also match before a trailing newline ("pets\n").
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def page_bounds(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) from a PageRequest; tokens are plain offsets (datasets/jobs/models only grow)."""
    limit = 50 if page_size <= 0 else min(page_size, 500)
    if not page_token:
        return 0, limit
    if not (page_token.isascii() and page_token.isdigit()) or len(page_token) > 12:
        raise InvalidArgument(f"page_token {page_token!r} is not a token this server issued")
    return int(page_token), limit


def next_token(offset: int, limit: int, returned: int) -> str:
    return str(offset + limit) if returned == limit else ""
