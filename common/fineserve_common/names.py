"""Names and short texts a caller sends (file names inside a data set, column names, ids, request ids): checked
here, in one place, so every field is refused alike; and quoted clipped, so that a 20,000-character value never
becomes a 20,000-character error message (gRPC carries the message in a size-limited trailer)."""

from __future__ import annotations

from typing import Any

from .errors import InvalidArgument

MAX_ID_CHARS = 128
"""Ids and names the service hands out or accepts: data set and job ids, model names, request ids."""
MAX_TEXT_CHARS = 256
"""Column names, class names, weight enum names and other short texts."""
MAX_RELATIVE_PATH_CHARS = 1024
"""A file named relative to a data set."""
MAX_PART_CHARS = 255
"""One component of a path (POSIX NAME_MAX)."""
CLIP_CHARS = 64
"""How much of a caller's value an error message quotes."""


def shorten(text: str, limit: int) -> str:
    """text, its middle cut out when it is longer than limit."""
    if len(text) <= limit:
        return text
    tail = min(12, limit // 4)
    return f"{text[:limit - tail - 3]}...{text[len(text) - tail:]}"


def clip(value: Any, limit: int = CLIP_CHARS) -> str:
    """repr(value) for a message, shortened to limit (a long string's length is said too)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str | bytes) else ""
    return shorten(text, limit) + size


def check_text(field: str, value: Any, max_chars: int = MAX_TEXT_CHARS) -> str:
    """value if it is a string of at most max_chars printable characters (no NUL, newline, escape or other
    control or format character); else InvalidArgument naming field."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string (got {clip(value)})")
    if len(value) > max_chars:
        raise InvalidArgument(f"{field} is {len(value)} characters long; at most {max_chars} are allowed")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        what = "a NUL byte" if bad == "\0" else f"the control character {bad!r}"
        raise InvalidArgument(f"{field} {clip(value)} holds {what}; only printable text is allowed")
    return value


def check_id(field: str, value: Any) -> str:
    """An id or name (data set id, model name, request id): printable, at most MAX_ID_CHARS."""
    return check_text(field, value, MAX_ID_CHARS)


def check_relative_path(field: str, value: Any) -> str:
    """A file named relative to a data set: printable, bounded, relative, no `..` component, no backslash. Where
    it resolves to (links) is the caller's to check against the data set's real directory."""
    check_text(field, value, MAX_RELATIVE_PATH_CHARS)
    parts = value.split("/")
    why = ("must be relative to the data set" if value.startswith("/") or value[1:3] == ":/" else
           "must not contain '..'" if ".." in parts else
           "must use '/' between folders, not '\\'" if "\\" in value else
           f"has a component longer than {MAX_PART_CHARS} characters" if max(map(len, parts)) > MAX_PART_CHARS else
           "")
    if why:
        raise InvalidArgument(f"{field} {clip(value)} {why}")
    return value
