"""Data sets registered from object storage or a URL (s3://, gs://, https://): the URL is checked against the
operator's allowed prefixes for the caller's tenant, then the data is copied into the store through fsspec.

Credentials and endpoints come from the front door's environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_S3,
GOOGLE_APPLICATION_CREDENTIALS, ...), never from the caller: the request carries a URL and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
import botocore.exceptions
import fsspec

from fineserve_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from fineserve_common.names import check_relative_path, check_text, clip

if TYPE_CHECKING:
    from service.config import Limits

T = TypeVar("T")
SCHEMES = ("s3", "gs", "https")
"""URL schemes fetched through fsspec; file:// and plain paths stay registered in place (allowed roots)."""
ARCHIVES = {".zip": "zip", ".tar": "tar", ".tgz": "tar", ".tar.gz": "tar", ".csv": "csv"}
"""A URL ending so names one object, fetched whole and then extracted as an upload is; any other s3:// or gs://
URL names a folder (a key prefix) whose objects are copied."""
TENANT = "{tenant}"
MAX_URL_CHARS = 2048
CHUNK = 1 << 20
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses a storage library gives up on after its own retries: the store is busy or down, not the request wrong."""
S3_CONFIG = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 2, "mode": "standard"}}
"""Bounded waits: an unreachable endpoint answers UNAVAILABLE in seconds rather than after botocore's retries."""


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme.lower() in SCHEMES


def check_prefix(prefix: str) -> str:
    """An allowed URL prefix as configured (e.g. s3://bucket/{tenant}/), normalised to end with '/'; ValueError
    naming the problem."""
    parts = urlsplit(prefix)
    if parts.scheme not in SCHEMES or not parts.netloc:
        raise ValueError(f"allowed URL prefix {prefix!r} must start with s3://BUCKET, gs://BUCKET or https://HOST")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"allowed URL prefix {prefix!r} must not carry a query, a fragment or credentials")
    return prefix if prefix.endswith("/") else prefix + "/"


def check_url(uri: str, prefixes: tuple[str, ...], tenant: str) -> str:
    """The URL, if it lies under one of the allowed prefixes ({tenant} standing for the caller's tenant) and
    names nothing outside it ('..', credentials, a query); InvalidArgument saying what to change otherwise."""
    check_text("uri", uri, MAX_URL_CHARS)
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidArgument(f"uri {clip(uri)} must not carry a query, a fragment or credentials: the server "
                              "reads object storage with its own credentials")
    segments = unquote(parts.path).split("/")
    if any(s in (".", "..") for s in segments) or "//" in parts.path.rstrip("/") or "\\" in parts.path:
        raise InvalidArgument(f"uri {clip(uri)} must not contain '.', '..', '\\' or empty path segments")
    allowed = [p.replace(TENANT, tenant) for p in prefixes]
    if not any(uri.startswith(p) for p in allowed):
        shown = ", ".join(allowed) or "none configured (--allowed-url-prefix)"
        raise InvalidArgument(f"uri {clip(uri)} is outside the URL prefixes tenant {tenant!r} may register from "
                              f"({shown}); ask the operator to allow it")
    return uri


def archive_format(uri: str) -> str | None:
    name = PurePosixPath(urlsplit(uri).path).name.lower()
    return next((fmt for suffix, fmt in ARCHIVES.items() if name.endswith(suffix)), None)


def _filesystem(scheme: str, ca_file: Path | None) -> fsspec.AbstractFileSystem:
    try:
        if scheme == "s3":
            return fsspec.filesystem("s3", config_kwargs=S3_CONFIG, skip_instance_cache=True)
        if scheme == "https":
            context = ssl.create_default_context()
            if ca_file is not None:
                context.load_verify_locations(cafile=str(ca_file))
            # max_redirects=1: the first redirect ends the fetch. The allowed prefixes confine the URL the caller
            # names; a redirect (an open redirect on an allowed host) would fetch from wherever the front door
            # reaches, plain http and internal addresses included.
            return fsspec.filesystem("https", ssl=context, skip_instance_cache=True, max_redirects=1,
                                     client_kwargs={"timeout": aiohttp.ClientTimeout(sock_connect=10, sock_read=60)})
        # gcsfs's plain JSON-API file system, not the experimental one its import may register for gs://: that
        # one probes each bucket's type over a gRPC channel first and, where the channel is unreachable
        # (emulators, HTTPS-only egress), stalls 60 s per call; reading objects needs none of it.
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(skip_instance_cache=True)
    except ImportError as e:
        raise FailedPrecondition(f"{scheme}:// data sets need a package this server lacks ({e}); the operator "
                                 "installs it (gs://: pip install 'fineserve[gcs]')") from None


def _copy(src: BinaryIO, out: BinaryIO, total: int, limit: int, what: str, clock: Clock, digest: Any = None) -> int:
    """Copy src into out, counting bytes against limit (sizes a listing states are not trusted)."""
    while True:
        clock.check()
        if not (chunk := src.read(CHUNK)):
            break
        total += len(chunk)
        if total > limit:
            raise ResourceExhausted(f"{what} is larger than {limit} bytes; the limit is the server's "
                                    "(--max-upload-bytes for one archive, --max-extracted-bytes for a folder)")
        if digest is not None:
            digest.update(chunk)
        out.write(chunk)
    return total


class Stopped(Exception):
    """A fetch given up because its call ended (the caller hung up or its deadline passed)."""


class Clock:
    """One fetch's time (max_fetch_seconds) and its call's life (stop, set when the call ends); checked between
    chunks, so a fetch stops within one read of either."""

    def __init__(self, uri: str, limits: Limits, stop: threading.Event | None = None) -> None:
        self.uri, self.seconds, self.stop = clip(uri), limits.max_fetch_seconds, stop
        self.deadline = time.monotonic() + self.seconds

    def check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopped(self.uri)
        if time.monotonic() > self.deadline:
            raise ResourceExhausted(f"the fetch of {self.uri} took longer than max_fetch_seconds={self.seconds:g}; "
                                    "register a smaller data set, or ask the operator for a faster store")


def fetch_archive(uri: str, out: BinaryIO, limits: Limits, ca_file: Path | None,
                  stop: threading.Event | None = None) -> tuple[int, str]:
    """One object (an archive or a CSV) into out; (bytes, sha256). Stops when stop is set."""
    scheme = urlsplit(uri).scheme
    fs = _filesystem(scheme, ca_file)
    digest = hashlib.sha256()
    clock = Clock(uri, limits, stop)
    # https: one streamed GET (block_size 0), so servers without Range support serve too.
    with _translated(uri), fs.open(uri, "rb", block_size=0 if scheme == "https" else CHUNK) as src:
        size = _copy(src, out, 0, limits.max_upload_bytes, f"the object {clip(uri)}", clock, digest)
    out.flush()
    if size == 0:
        raise InvalidArgument(f"uri {clip(uri)} is empty")
    return size, digest.hexdigest()


def fetch_folder(uri: str, dest: Path, limits: Limits, stop: threading.Event | None = None) -> tuple[int, int]:
    """Every object under a key prefix into dest (created here), keeping their relative paths; (files, bytes).
    Stops when stop is set."""
    scheme = urlsplit(uri).scheme
    if scheme == "https":
        raise InvalidArgument(f"uri {clip(uri)}: an https:// URL must name an archive or a CSV file "
                              f"({', '.join(ARCHIVES)}); folders can be registered from s3:// or gs://")
    fs = _filesystem(scheme, None)
    clock = Clock(uri, limits, stop)
    root = fs._strip_protocol(uri).rstrip("/")
    dest.mkdir(parents=True)
    files = total = 0
    with _translated(uri):
        for top, _, names in fs.walk(root, detail=False, on_error=_raise_unless_missing):
            for name in names:
                files += 1
                if files > limits.max_archive_files:
                    raise ResourceExhausted(f"uri {clip(uri)} holds more than max_archive_files="
                                            f"{limits.max_archive_files} objects")
                key = f"{top}/{name}"
                rel = check_relative_path("object key", key[len(root) + 1:])
                target = dest / rel
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    out = open(target, "xb")  # noqa: SIM115 - closed below
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    raise InvalidArgument(f"uri {clip(uri)}: object {clip(rel)} collides with a folder or an "
                                          "object of the same name; a data set's files need distinct paths") from None
                with out, fs.open(key, "rb", block_size=CHUNK) as src:
                    total = _copy(src, out, total, limits.max_extracted_bytes, f"the folder {clip(uri)}", clock)
    if files == 0:
        raise NotFound(f"uri {clip(uri)}: no objects under this prefix (a folder URL ends with '/'; an archive "
                       f"ends with {', '.join(ARCHIVES)})")
    return files, total


def _raise_unless_missing(e: OSError) -> None:
    """fsspec's walk drops every listing error by default, so a refused listing (gcsfs's 403) read as an empty
    folder; only a missing prefix may be empty."""
    if not isinstance(e, FileNotFoundError):
        raise e


class _translated:
    """Turns the storage libraries' errors into statuses the caller can act on."""

    def __init__(self, uri: str) -> None:
        self.uri = clip(uri)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: object) -> None:
        if e is None or isinstance(e, InvalidArgument | ResourceExhausted | NotFound | FailedPrecondition | Stopped):
            return
        if isinstance(e, FileNotFoundError) and e.__cause__ is not None:
            e = e.__cause__  # fsspec's https reports every failure to reach a file (TLS, connection) as not found
        if isinstance(e, aiohttp.TooManyRedirects):
            target = e.history[-1].headers.get("Location", "") if e.history else ""
            raise InvalidArgument(f"uri {self.uri} redirects to {clip(target)}; redirects are not followed (they "
                                  "could leave the allowed URL prefixes): register the URL it names, if it lies "
                                  "under them") from e
        status = _http_status(e)
        if isinstance(e, FileNotFoundError) or status in (404, 410):
            raise NotFound(f"uri {self.uri} does not exist (no such bucket, object or prefix)") from e
        if isinstance(e, PermissionError | botocore.exceptions.NoCredentialsError) or status in (401, 403):
            raise FailedPrecondition(f"the server's credentials may not read {self.uri} ({clip(str(e), 300)}); the "
                                     "operator grants them in the front door's environment") from e
        if status in RETRIED_STATUSES or isinstance(e, OSError | TimeoutError | asyncio.TimeoutError
                                                      | aiohttp.ClientError | botocore.exceptions.BotoCoreError):
            raise Unavailable(f"cannot reach the storage of {self.uri} ({type(e).__name__}: {clip(str(e), 300)}); "
                              "retry later, or ask the operator to check the endpoint") from e
        if status >= 400:
            raise FailedPrecondition(f"the storage of {self.uri} refused the read (HTTP {status}: "
                                     f"{clip(str(e), 300)}); the operator checks the bucket and the front door's "
                                     "storage settings") from e


def _http_status(e: BaseException | None) -> int:
    """The HTTP status a storage library's error carries, 0 if none: aiohttp's (https://) and gcsfs's, which
    raises HttpError with .code, a 403 as a bare OSError("Forbidden: ...") and some refusals as a ValueError raised
    while handling the HttpError (a requester-pays bucket); gcsfs is optional, so matched by name."""
    if isinstance(e, aiohttp.ClientResponseError):
        return e.status
    if type(e).__name__ == "HttpError" and isinstance(getattr(e, "code", None), int):
        return e.code  # type: ignore[union-attr]
    if type(e) is OSError and str(e).startswith("Forbidden: "):
        return 403
    if isinstance(e, ValueError):
        return _http_status(e.__cause__ or e.__context__)
    return 0


class Fetches:
    """The fetches in flight in one front door, each on a thread of its own pool: not the event loop's default
    executor, which every quick store call, uncached model lookup and the health check share, and which a
    tenant's hour-long fetches would fill. At most max_fetches in all and max_fetches_per_tenant per tenant,
    counted until a fetch's thread ends (not its call); past either a call is refused at once. A call that ends
    (hang-up, deadline) stops its fetch at the next chunk."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._pool = ThreadPoolExecutor(limits.max_fetches, thread_name_prefix="fineserve-fetch")
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()

    async def run(self, tenant: str, fetch: Callable[[threading.Event], T]) -> T:
        """fetch(stop) on a fetch thread, counted against tenant's share."""
        self._claim(tenant)
        stop = threading.Event()
        done = asyncio.wrap_future(self._pool.submit(self._run, tenant, fetch, stop))
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            stop.set()  # it ends at its next chunk; the caller removes what it wrote once it has
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await done
            raise

    def _claim(self, tenant: str) -> None:
        per_tenant, total = self._limits.max_fetches_per_tenant, self._limits.max_fetches
        with self._lock:
            if self._running[tenant] >= per_tenant:
                raise ResourceExhausted(f"tenant {tenant!r} has {per_tenant} data set fetches in flight "
                                        f"(max_fetches_per_tenant={per_tenant}); retry when one has ended")
            if self._running.total() >= total:
                raise ResourceExhausted(f"this front door is running {total} data set fetches (max_fetches="
                                        f"{total}); retry later")
            self._running[tenant] += 1

    def _run(self, tenant: str, fetch: Callable[[threading.Event], T], stop: threading.Event) -> T:
        try:
            if stop.is_set():
                raise Stopped("before it began")
            return fetch(stop)
        finally:
            self._release(tenant)

    def _release(self, tenant: str) -> None:
        with self._lock:
            self._running[tenant] -= 1
            if not self._running[tenant]:
                del self._running[tenant]
