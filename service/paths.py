"""Caller-given paths, confined to the server's allowed roots."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from fineserve_common.errors import InvalidArgument
from fineserve_common.names import check_text, clip

MAX_PATH_CHARS = 4096


def _inside(real: Path, roots: tuple[Path, ...]) -> bool:
    return any(real == r or r in real.parents for r in roots)


def resolve_under_roots(uri: str, roots: tuple[Path, ...], field: str) -> Path:
    """Resolve symlinks and `..` first, then require the real path to lie inside an allowed root."""
    if not uri:
        raise InvalidArgument(f"{field} is required")
    check_text(field, uri, MAX_PATH_CHARS)
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidArgument(f"{field} {clip(uri)} names another host; only local paths are accepted")
        raw = check_text(f"{field} (decoded)", unquote(parsed.path), MAX_PATH_CHARS)
    else:
        raw = uri
    if not raw.startswith("/"):
        raise InvalidArgument(f"{field} must be an absolute path or file:// URI, got {clip(uri)}")
    try:
        real = Path(raw).resolve()
        exists = real.exists()
    except (OSError, RuntimeError, ValueError) as e:  # name too long, symlink loop, ...
        raise InvalidArgument(f"{field} {clip(uri)} cannot be resolved: {clip(str(e), 200)}") from e
    if not _inside(real, roots):
        allowed = ", ".join(map(str, roots)) or "none configured (--allowed-root)"
        raise InvalidArgument(f"{field} {clip(uri)} is outside the allowed roots ({allowed})")
    if not exists:
        raise InvalidArgument(f"{field} {clip(uri)} does not exist")
    return real


def check_links_inside(folder: Path, roots: tuple[Path, ...], field: str) -> None:
    """Refuse a registered folder holding a symbolic link that leads outside the allowed roots.

    The folder itself was resolved by resolve_under_roots; a link inside it (train/cat/x.png -> /etc/shadow,
    or a linked directory) would let a job read files the caller may not name directly.
    """
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(top) / name
            if not path.is_symlink():
                continue
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError) as e:
                raise InvalidArgument(f"{field}: {path.relative_to(folder)} is a broken or looping link: {e}") from e
            if not _inside(target, roots):
                raise InvalidArgument(f"{field}: {path.relative_to(folder)} is a symbolic link to {target}, "
                                      "outside the allowed roots")
