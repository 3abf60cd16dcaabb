"""Safe extraction of uploaded zip/tar archives.

Written by hand rather than with tarfile's extraction filters because the same checks must cover zip too,
and because bounding size while copying (not trusting declared sizes) needs the copy loop anyway. Only
regular files and directories are created; links, devices, absolute names and `..` are refused.

Zip bombs are refused three ways: the entry count and the declared sizes in a zip's central directory are
checked before anything is written (count, total, and each entry's expanded/compressed ratio against
max_archive_ratio); and while copying, the bytes actually written are bounded by max_extracted_bytes and by
max_archive_ratio times the archive's size (which also covers compressed tars, whose members declare no
compressed size). Ratios are only enforced past RATIO_FLOOR_BYTES, so a small, very compressible file
(a CSV, a blank mask) is never refused for its ratio alone.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from fineserve_common.errors import InvalidArgument
from service.config import Limits


class ArchiveError(InvalidArgument):
    """The archive is malformed or unsafe."""


class ArchiveTooLarge(ArchiveError):
    """The archive exceeds a configured limit: still an ArchiveError to its callers, a limit to the caller."""

    status = "RESOURCE_EXHAUSTED"


# (name, is_dir, opener) for each member; opener is None for directories.
Member = tuple[str, bool, "object"]

RATIO_FLOOR_BYTES = 1 << 20


def _safe_relpath(name: str) -> PurePosixPath | None:
    """Relative path of an archive member, or raise for names that would escape the target."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"archive entry {name!r} has a name that is not valid UTF-8") from None
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or (p.parts and ":" in p.parts[0]):
        raise ArchiveError(f"archive entry {name!r} has an absolute path")
    if any(part == ".." for part in p.parts):
        raise ArchiveError(f"archive entry {name!r} escapes the archive root ('..')")
    parts = [q for q in p.parts if q not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


@contextmanager
def _members(archive: Path, fmt: str, limits: Limits) -> Iterator[Iterator[tuple[str, bool, IO[bytes] | None]]]:
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                _check_zip_directory(zf, archive.stat().st_size, limits)
                yield _zip_members(zf)
        else:
            with tarfile.open(archive, "r:*") as tf:
                yield _tar_members(tf)
    except ArchiveError:
        raise
    except Exception as e:  # zipfile, tarfile and the codecs under them fail in many ways on hostile input
        raise ArchiveError(f"not a readable {fmt} archive: {type(e).__name__}: {e}") from e


def _ratio_message(what: str, expanded: int, compressed: int, limits: Limits) -> str:
    return (f"{what} expands {compressed} bytes to {expanded} "
            f"(ratio {expanded / max(compressed, 1):.0f}:1), over max_archive_ratio={limits.max_archive_ratio:g}")


def _check_zip_directory(zf: zipfile.ZipFile, archive_size: int, limits: Limits) -> None:
    """Refuse a zip bomb from its central directory alone, before extracting anything."""
    infos = zf.infolist()
    if len(infos) > limits.max_archive_files:
        raise ArchiveTooLarge(f"archive has {len(infos)} entries, "
                              f"more than max_archive_files={limits.max_archive_files}")
    declared = 0
    for info in infos:
        declared += info.file_size
        expanded = info.file_size
        if expanded > RATIO_FLOOR_BYTES and expanded > limits.max_archive_ratio * max(info.compress_size, 1):
            raise ArchiveTooLarge(_ratio_message(f"archive entry {info.filename!r}", info.file_size,
                                                 info.compress_size, limits))
    if declared > limits.max_extracted_bytes:
        raise ArchiveTooLarge(f"archive declares {declared} bytes, "
                              f"past max_extracted_bytes={limits.max_extracted_bytes}")
    if declared > RATIO_FLOOR_BYTES and declared > limits.max_archive_ratio * max(archive_size, 1):
        raise ArchiveTooLarge(_ratio_message("the archive", declared, archive_size, limits))


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
    files = entries = total = 0
    archive_size = archive.stat().st_size
    ratio_cap = max(limits.max_archive_ratio * archive_size, RATIO_FLOOR_BYTES)
    try:
        with _members(archive, fmt, limits) as members:
            for name, is_dir, stream in members:
                entries += 1
                if entries > limits.max_archive_files:
                    raise ArchiveTooLarge(f"archive has more than max_archive_files={limits.max_archive_files} entries")
                rel = _safe_relpath(name)
                if rel is None:
                    continue
                target = dest.joinpath(*rel.parts)
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                files += 1
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
                        if total > ratio_cap:
                            raise ArchiveTooLarge(_ratio_message("the archive", total, archive_size, limits))
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
