"""Safe extraction of uploaded zip/tar archives.

Written by hand rather than with tarfile's extraction filters because the same checks must cover zip too,
and because bounding size while copying (not trusting declared sizes) needs the copy loop anyway. Only
regular files and directories are created; links, devices, absolute names and `..` are refused.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from service.config import Limits


class ArchiveError(ValueError):
    """The archive is malformed or unsafe (INVALID_ARGUMENT)."""


class ArchiveTooLarge(ArchiveError):
    """The archive exceeds a configured limit (RESOURCE_EXHAUSTED)."""


# (name, is_dir, opener) for each member; opener is None for directories.
Member = tuple[str, bool, "object"]


def _safe_relpath(name: str) -> PurePosixPath | None:
    """Relative path of an archive member, or raise for names that would escape the target."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or (p.parts and ":" in p.parts[0]):
        raise ArchiveError(f"archive entry {name!r} has an absolute path")
    if any(part == ".." for part in p.parts):
        raise ArchiveError(f"archive entry {name!r} escapes the archive root ('..')")
    parts = [q for q in p.parts if q not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


@contextmanager
def _members(archive: Path, fmt: str) -> Iterator[Iterator[tuple[str, bool, IO[bytes] | None]]]:
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                yield _zip_members(zf)
        else:
            with tarfile.open(archive, "r:*") as tf:
                yield _tar_members(tf)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise ArchiveError(f"not a readable {fmt} archive: {e}") from e


def _zip_members(zf: zipfile.ZipFile) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if mode and (mode & 0o170000) not in (0, 0o100000, 0o040000):
            raise ArchiveError(f"archive entry {info.filename!r} is a link or special file")
        yield info.filename, info.is_dir(), None if info.is_dir() else zf.open(info)


def _tar_members(tf: tarfile.TarFile) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    for m in tf:
        if m.issym() or m.islnk():
            raise ArchiveError(f"archive entry {m.name!r} is a link")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"archive entry {m.name!r} is not a regular file or directory")
        yield m.name, m.isdir(), None if m.isdir() else tf.extractfile(m)


def extract(archive: Path, fmt: str, dest: Path, limits: Limits) -> tuple[int, int]:
    """Extract into dest (which must not exist); returns (files, bytes). On error dest is removed."""
    dest.mkdir(parents=True)
    files = total = 0
    try:
        with _members(archive, fmt) as members:
            for name, is_dir, stream in members:
                rel = _safe_relpath(name)
                if rel is None:
                    continue
                target = dest.joinpath(*rel.parts)
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                files += 1
                if files > limits.max_archive_files:
                    raise ArchiveTooLarge(f"archive has more than max_archive_files={limits.max_archive_files} files")
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    raise ArchiveError(f"archive entry {name!r} appears twice")
                assert stream is not None
                with stream, open(target, "wb") as out:
                    while chunk := stream.read(1 << 20):
                        total += len(chunk)
                        if total > limits.max_extracted_bytes:
                            raise ArchiveTooLarge(
                                f"archive expands past max_extracted_bytes={limits.max_extracted_bytes}")
                        out.write(chunk)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if files == 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError("archive holds no files")
    return files, total


def unwrap_single_folder(root: Path) -> Path:
    """Archives of a folder often hold one top-level directory: use its content as the dataset root."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return root
