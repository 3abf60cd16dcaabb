"""Safe extraction: escapes, links, bombs and junk are refused and leave nothing behind."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from service.archives import ArchiveError, ArchiveTooLarge, extract, unwrap_single_folder
from service.config import Limits


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tf:
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def test_extracts_regular_files(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {"ds/a/1.png": b"x", "ds/b/2.png": b"yy"})
    files, size = extract(arc, "zip", tmp_path / "out", Limits())
    assert (files, size) == (2, 3)
    assert unwrap_single_folder(tmp_path / "out") == tmp_path / "out" / "ds"


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png"])
def test_zip_escapes_refused(tmp_path: Path, name: str) -> None:
    arc = _zip(tmp_path / "a.zip", {"ok.png": b"x", name: b"x"})
    with pytest.raises(ArchiveError):
        extract(arc, "zip", tmp_path / "out", Limits())
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.png").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_links_and_devices_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("a/link")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(ArchiveError):
        extract(_tar_with(tmp_path / "a.tar", info), "tar", tmp_path / "out", Limits())
    assert not (tmp_path / "out").exists()


def test_zip_symlink_refused(tmp_path: Path) -> None:
    arc = tmp_path / "a.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        info = zipfile.ZipInfo("a/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="link"):
        extract(arc, "zip", tmp_path / "out", Limits())


def test_bounds_on_files_and_bytes(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {f"c/{i}.png": b"x" * 100 for i in range(5)})
    with pytest.raises(ArchiveTooLarge, match="max_archive_files=3"):
        extract(arc, "zip", tmp_path / "o1", Limits(max_archive_files=3))
    with pytest.raises(ArchiveTooLarge, match="max_extracted_bytes=250"):
        extract(arc, "zip", tmp_path / "o2", Limits(max_extracted_bytes=250))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_garbage_and_empty_archives(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract(junk, "zip", tmp_path / "o1", Limits())
    with pytest.raises(ArchiveError, match="no files"):
        extract(_zip(tmp_path / "e.zip", {}), "zip", tmp_path / "o2", Limits())
