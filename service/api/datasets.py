"""Datasets servicer: streamed uploads (checked, safely extracted) and registered directories."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import grpc

from control.store import Store, now_ts
from fineserve.v1 import datasets_pb2, datasets_pb2_grpc
from fineserve_common.errors import InvalidArgument, ResourceExhausted, Unimplemented
from service import archives, remote_datasets
from service.config import Settings
from service.dataset_layout import SUMMARIZERS
from service.errors import rpc
from service.ids import new_id, next_token, page_bounds
from service.paths import check_links_inside, resolve_under_roots
from service.table_layouts import CSV_LAYOUTS, store_single_csv
from service.tenancy import current_tenant, owned

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
FORMATS = {datasets_pb2.ZIP: "zip", datasets_pb2.TAR: "tar", datasets_pb2.CSV: "csv"}
UPLOAD = ".upload"
"""An upload's archive in tmp/ is <id>.upload, extracted into <id>.extract/."""


def claim_upload_file(path: Path) -> BinaryIO:
    """Create an upload's archive file, locked (flock) for as long as its call holds it open: the lock tells
    sweep_upload_tmp, run by every front door that starts on this data directory, that the upload is alive."""
    while True:
        out = open(path, "xb")  # noqa: SIM115 - the call closes it when it ends
        fcntl.flock(out, fcntl.LOCK_EX)
        if os.fstat(out.fileno()).st_nlink:
            return out
        out.close()  # a sweep removed it between its creation and the lock: create it again


def sweep_upload_tmp(tmp: Path) -> int:
    """Remove what uploads cut off by a killed front door left in tmp/ (their archives and extractions);
    returns how many entries went. Uploads in flight through other front doors sharing the data directory
    (Kubernetes) hold their archive's lock and keep it, and its extraction folder with it."""
    removed = 0
    entries = sorted(tmp.iterdir(), key=lambda e: e.suffix != UPLOAD)  # archives first
    for entry in entries:
        if entry.suffix == UPLOAD:
            try:
                with open(entry, "rb") as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    entry.unlink()  # still locked: its creator, if it just made it, sees it gone (claim_upload_file)
            except (BlockingIOError, FileNotFoundError):
                continue  # alive, or finished meanwhile
        elif entry.with_suffix(UPLOAD).exists():
            continue  # the extraction of a live upload
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _check_name_and_layout(name: str, layout: int) -> None:
    if not name or len(name) > 128 or not name.isprintable():
        raise InvalidArgument("name must be 1-128 printable characters")
    if layout == datasets_pb2.DATASET_LAYOUT_UNSPECIFIED:
        raise InvalidArgument("layout is required (IMAGE_FOLDERS, IMAGE_MASKS)")
    if layout not in SUMMARIZERS:
        raise Unimplemented.planned(f"dataset layout {datasets_pb2.DatasetLayout.Name(layout)}",
                                    "the issue of the task that uses it")


class DatasetsServicer(datasets_pb2_grpc.DatasetsServicer):
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._fetches = remote_datasets.Fetches(settings.limits)
        self._root = settings.data_dir / "datasets"
        self._tmp = settings.data_dir / "tmp"
        self._root.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        if removed := sweep_upload_tmp(self._tmp):
            log.info("removed %d leftover(s) of interrupted uploads from %s", removed, self._tmp)

    @rpc
    async def UploadDataset(self, request_iterator: AsyncIterator[datasets_pb2.UploadDatasetRequest],
                            context: grpc.aio.ServicerContext) -> datasets_pb2.Dataset:
        header: datasets_pb2.UploadHeader | None = None
        ds_id = new_id("ds")
        archive = self._tmp / f"{ds_id}{UPLOAD}"
        staged = self._tmp / f"{ds_id}.extract"
        digest = hashlib.sha256()
        size = 0
        limit = self._settings.limits.max_upload_bytes
        out = claim_upload_file(archive)
        try:
            async for msg in request_iterator:
                part = msg.WhichOneof("part")
                if header is None:
                    if part != "header":
                        raise InvalidArgument("the first UploadDatasetRequest must carry the header")
                    header = msg.header
                    self._check_header(header)
                    continue
                if part != "chunk":
                    raise InvalidArgument("only the first UploadDatasetRequest may carry a header")
                size += len(msg.chunk)
                if size > limit:
                    raise ResourceExhausted(f"upload is larger than max_upload_bytes={limit}")
                digest.update(msg.chunk)
                out.write(msg.chunk)
            out.flush()
            if header is None:
                raise InvalidArgument("empty upload: send a header, then the archive in chunks")
            if size == 0:
                raise InvalidArgument("the upload carried no archive bytes")
            if digest.hexdigest() != header.sha256:
                raise InvalidArgument(f"sha256 mismatch: declared {header.sha256}, received "
                                      f"{digest.hexdigest()} over {size} bytes")
            files, nbytes = await asyncio.to_thread(self._extract, archive, FORMATS[header.format], staged)
            ds = datasets_pb2.Dataset(id=ds_id, name=header.name, layout=header.layout, source="upload",
                                      sha256=header.sha256, size_bytes=nbytes, file_count=files)
            return await self._keep(ds, staged)
        finally:  # the extraction first, then the archive, then its lock (sweep_upload_tmp)
            shutil.rmtree(staged, ignore_errors=True)
            archive.unlink(missing_ok=True)
            out.close()

    async def _keep(self, ds: datasets_pb2.Dataset, staged: Path) -> datasets_pb2.Dataset:
        """Check the staged files' layout, move them into the store and add the row (uploads, fetched URLs)."""
        root = archives.unwrap_single_folder(staged)
        ds.summary.CopyFrom(await asyncio.to_thread(SUMMARIZERS[ds.layout], root))
        ds.created_at.CopyFrom(now_ts())
        ds.tenant = current_tenant()
        final = self._root / ds.id
        root.rename(final)
        await asyncio.to_thread(self._store.put_dataset, ds, str(final))
        return ds

    def _check_header(self, header: datasets_pb2.UploadHeader) -> None:
        _check_name_and_layout(header.name, header.layout)
        if header.format not in FORMATS:
            raise InvalidArgument("format must be ZIP or TAR (or CSV for the CSV layouts)")
        if header.format == datasets_pb2.CSV and header.layout not in CSV_LAYOUTS:
            raise InvalidArgument("format CSV (a single file) is for the RATINGS_CSV and TABULAR_CSV layouts")
        if not SHA256.match(header.sha256):
            raise InvalidArgument("sha256 must be 64 lower-case hex characters")
        if header.size_bytes > self._settings.limits.max_upload_bytes:
            raise ResourceExhausted(f"declared size {header.size_bytes} exceeds max_upload_bytes="
                                    f"{self._settings.limits.max_upload_bytes}")

    def _extract(self, archive: Path, fmt: str, dest: Path) -> tuple[int, int]:
        if fmt == "csv":
            return store_single_csv(archive, dest)
        return archives.extract(archive, fmt, dest, self._settings.limits)

    @rpc
    async def RegisterDataset(self, request: datasets_pb2.RegisterDatasetRequest,
                              context: grpc.aio.ServicerContext) -> datasets_pb2.Dataset:
        _check_name_and_layout(request.name, request.layout)
        if remote_datasets.is_remote(request.uri):
            return await self._fetch(request)
        path, summary, files, size = await asyncio.to_thread(self._inspect_registered, request)
        ds = datasets_pb2.Dataset(id=new_id("ds"), name=request.name, layout=request.layout, source="registered",
                                  uri=str(path), size_bytes=size, file_count=files, summary=summary,
                                  created_at=now_ts(), tenant=current_tenant())
        await asyncio.to_thread(self._store.put_dataset, ds, str(path))
        return ds

    async def _fetch(self, request: datasets_pb2.RegisterDatasetRequest) -> datasets_pb2.Dataset:
        """Copy a data set from object storage or a URL into the store, as an upload is: staged in tmp/ under
        the upload lock (a failure or a killed front door leaves nothing behind), layout-checked, then moved."""
        uri = remote_datasets.check_url(request.uri, self._settings.allowed_url_prefixes, current_tenant())
        ds = datasets_pb2.Dataset(id=new_id("ds"), name=request.name, layout=request.layout, source="fetched",
                                  uri=uri)
        archive, staged = self._tmp / f"{ds.id}{UPLOAD}", self._tmp / f"{ds.id}.extract"
        fmt = remote_datasets.archive_format(uri)
        if fmt == "csv" and request.layout not in CSV_LAYOUTS:
            raise InvalidArgument("a .csv URL is for the RATINGS_CSV and TABULAR_CSV layouts")
        limits = self._settings.limits

        def fetch(stop: threading.Event) -> tuple[str, int, int]:
            """(sha256 of the archive or "", files, bytes) in staged."""
            if fmt is None:
                return "", *remote_datasets.fetch_folder(uri, staged, limits, stop)
            _, sha256 = remote_datasets.fetch_archive(uri, out, limits, self._settings.url_ca_file, stop)
            return sha256, *self._extract(archive, fmt, staged)

        out = claim_upload_file(archive)
        try:
            ds.sha256, ds.file_count, ds.size_bytes = await self._fetches.run(current_tenant(), fetch)
            return await self._keep(ds, staged)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            archive.unlink(missing_ok=True)
            out.close()

    def _inspect_registered(self, request: datasets_pb2.RegisterDatasetRequest,
                            ) -> tuple[Path, datasets_pb2.DatasetSummary, int, int]:
        """Off the event loop: confine the path, refuse links out of the roots, check the layout, count."""
        roots = self._settings.allowed_roots
        path = resolve_under_roots(request.uri, roots, "uri")
        if not path.is_dir():
            raise InvalidArgument(f"uri {request.uri!r} is not a directory")
        check_links_inside(path, roots, "uri")
        summary = SUMMARIZERS[request.layout](path)
        files = [f for f in path.rglob("*") if f.is_file()]
        return path, summary, len(files), sum(f.stat().st_size for f in files)

    def _get(self, ds_id: str) -> tuple[datasets_pb2.Dataset, str]:
        """The caller's dataset; another tenant's id is reported exactly like an unknown one."""
        return owned(self._store.get_dataset(ds_id, tenant=current_tenant()), f"dataset {ds_id!r}")

    @rpc
    async def GetDataset(self, request: datasets_pb2.GetDatasetRequest,
                         context: grpc.aio.ServicerContext) -> datasets_pb2.Dataset:
        return (await asyncio.to_thread(self._get, request.id))[0]

    @rpc
    async def ListDatasets(self, request: datasets_pb2.ListDatasetsRequest,
                           context: grpc.aio.ServicerContext) -> datasets_pb2.ListDatasetsResponse:
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        items = await asyncio.to_thread(self._store.list_datasets, request.layout, offset, limit,
                                        tenant=current_tenant())
        return datasets_pb2.ListDatasetsResponse(datasets=items, next_page_token=next_token(offset, limit, len(items)))

    @rpc
    async def DeleteDataset(self, request: datasets_pb2.DeleteDatasetRequest,
                            context: grpc.aio.ServicerContext) -> datasets_pb2.DeleteDatasetResponse:
        ds, path = await asyncio.to_thread(self._get, request.id)
        await asyncio.to_thread(self._store.delete_dataset, ds.id, tenant=current_tenant())
        if ds.source in ("upload", "fetched"):  # copies in the store; a registered folder is the caller's
            await asyncio.to_thread(shutil.rmtree, path, True)
        return datasets_pb2.DeleteDatasetResponse()
