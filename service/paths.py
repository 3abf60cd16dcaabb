"""Caller-given paths, confined to the server's allowed roots."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from service.errors import invalid


def resolve_under_roots(uri: str, roots: tuple[Path, ...], field: str) -> Path:
    """Resolve symlinks and `..` first, then require the real path to lie inside an allowed root."""
    if not uri:
        raise invalid(f"{field} is required")
    raw = urlparse(uri).path if uri.startswith("file://") else uri
    if not raw.startswith("/"):
        raise invalid(f"{field} must be an absolute path or file:// URI, got {uri!r}")
    real = Path(raw).resolve()
    if not any(real == r or r in real.parents for r in roots):
        allowed = ", ".join(map(str, roots)) or "none configured (--allowed-root)"
        raise invalid(f"{field} {uri!r} is outside the allowed roots ({allowed})")
    if not real.exists():
        raise invalid(f"{field} {uri!r} does not exist")
    return real
