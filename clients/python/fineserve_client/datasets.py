"""The datasets area of :class:`~fineserve_client.Client` and :class:`~fineserve_client.AsyncClient`: upload (a
folder is zipped first), register, get, list and delete."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fineserve.v1 import datasets_pb2

from .arguments import enum_value
from .connection import MAX_MESSAGE_BYTES, Blocking, Call, Plan, operation, paged
from .progress import ProgressBar
from .records import Dataset

# Already-compressed files are stored in the upload zip as they are; deflating them again only costs time.
_STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".zip", ".gz", ".bz2", ".xz"})
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_MAX_CHUNK = MAX_MESSAGE_BYTES - 1024
"""Room for the request's own framing under the message limit."""


def _zip_folder(folder: Path, dest: Path) -> int:
    """Zip the regular files under ``folder`` into ``dest`` with relative POSIX names, in sorted order (so the
    same folder gives the same sha256), without following symbolic links. Returns the number of files."""
    count = 0
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, strict_timestamps=False) as zf:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                arcname = os.path.relpath(path, folder).replace(os.sep, "/")
                stored = os.path.splitext(name)[1].lower() in _STORED_SUFFIXES
                zf.write(path, arcname, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
                count += 1
    return count


def _archive_format(path: Path) -> int:
    name = path.name.lower()
    if name.endswith(".zip"):
        return datasets_pb2.ZIP
    if name.endswith(_TAR_SUFFIXES):
        return datasets_pb2.TAR
    if name.endswith(".csv"):
        return datasets_pb2.CSV
    raise ValueError(f"{path}: not a folder, .zip, .tar, .tar.gz, .tgz or .csv file")


def _default_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", *_TAR_SUFFIXES, ".csv"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "dataset"


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class _Archive:
    path: Path
    format: int
    default_name: str
    sha256: str
    size: int
    temporary: bool


def _archive(src: Path) -> _Archive:
    """The file to send for ``src``: a folder zipped into a temporary file, or the archive as it is."""
    if src.is_dir():
        fd, temp_name = tempfile.mkstemp(prefix="fineserve-upload-", suffix=".zip")
        os.close(fd)
        temp = Path(temp_name)
        try:
            if _zip_folder(src, temp) == 0:
                raise ValueError(f"{src}: the folder holds no files")
            return _Archive(temp, datasets_pb2.ZIP, src.resolve().name, *_sha256_file(temp), temporary=True)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    if src.is_file():
        return _Archive(src, _archive_format(src), _default_name(src), *_sha256_file(src), temporary=False)
    raise FileNotFoundError(f"{src}: no such file or folder")


class DatasetsArea:
    @operation
    def upload_dataset(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        layout: str | int = "image_folders",
        chunk_size: int = 1 << 20,
        progress: bool | ProgressBar = False,
        *,
        timeout: float | None = None,
    ) -> Plan[Dataset]:
        """Upload a dataset and return the server's record of it.

        ``path`` is a folder (zipped first, into a temporary file, with relative names and no links
        followed) or a ``.zip``, ``.tar``/``.tar.gz``/``.tgz`` (or ``.csv``) file. ``name`` defaults to the
        folder or file name; ``layout`` is a ``DatasetLayout`` name such as ``"image_folders"``. The archive
        is sent in ``chunk_size`` pieces after a header carrying its sha256 and size; ``progress`` shows
        the bytes sent on stderr. ``timeout`` (seconds) bounds the whole upload; by default it has none.
        An upload is not retried (it is not idempotent).
        """
        src = Path(path)
        layout_value = enum_value(datasets_pb2.DatasetLayout, layout, "layout")
        if not 0 < chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk_size must be between 1 and {_MAX_CHUNK} bytes")
        archive: _Archive = yield Blocking(lambda: _archive(src))
        header = datasets_pb2.UploadHeader(name=name or archive.default_name, layout=layout_value,
                                           format=archive.format, sha256=archive.sha256, size_bytes=archive.size)
        bar = progress if isinstance(progress, ProgressBar) else ProgressBar(enabled=progress)

        def requests() -> Iterator[datasets_pb2.UploadDatasetRequest]:
            yield datasets_pb2.UploadDatasetRequest(header=header)
            sent = 0
            with open(archive.path, "rb") as f:
                while chunk := f.read(chunk_size):
                    sent += len(chunk)
                    yield datasets_pb2.UploadDatasetRequest(chunk=chunk)
                    bar.transfer(sent, archive.size)

        try:
            return Dataset.from_proto((yield Call("datasets", "UploadDataset", requests(), retry=False,
                                                  timeout=timeout)))
        finally:
            bar.close()
            if archive.temporary:
                archive.path.unlink(missing_ok=True)

    @operation
    def register_dataset(
        self, uri: str | os.PathLike[str], name: str, layout: str | int = "image_folders"
    ) -> Plan[Dataset]:
        """Register a folder that already lies under one of the server's allowed roots (no copy; not retried)."""
        request = datasets_pb2.RegisterDatasetRequest(
            name=name, layout=enum_value(datasets_pb2.DatasetLayout, layout, "layout"), uri=os.fspath(uri)
        )
        return Dataset.from_proto((yield Call("datasets", "RegisterDataset", request, retry=False)))

    @operation
    def get_dataset(self, id: str) -> Plan[Dataset]:
        """One dataset by id."""
        return Dataset.from_proto((yield Call("datasets", "GetDataset", datasets_pb2.GetDatasetRequest(id=id))))

    @operation
    def list_datasets(self, layout: str | int | None = None) -> Plan[list[Dataset]]:
        """Every dataset (all pages), optionally only those with ``layout``."""
        request = datasets_pb2.ListDatasetsRequest()
        if layout is not None:
            request.layout = enum_value(datasets_pb2.DatasetLayout, layout, "layout")
        return [Dataset.from_proto(d) for d in (yield from paged("datasets", "ListDatasets", request, "datasets"))]

    @operation
    def delete_dataset(self, id: str) -> Plan[None]:
        """Delete a dataset (and, for uploads, its files); not retried (a repeat would answer NOT_FOUND)."""
        yield Call("datasets", "DeleteDataset", datasets_pb2.DeleteDatasetRequest(id=id), retry=False)
