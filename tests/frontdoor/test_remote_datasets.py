"""Data sets from object storage and URLs (service/remote_datasets.py): the allowed-prefix checks, and fetches
from real servers (child processes): S3-compatible (moto's server mode), GCS (gcp-storage-emulator), a local https
server with a private CA, and a GCS stand-in that refuses every read: what lands on disk, the bounds, and the
statuses a caller can act on."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from gcsfs.retry import HttpError
from security.helpers import Pki, http_server, image_folders, make_pki, url_of, zip_folder
from security.object_store import BUCKET, GcsStore, ObjectStore, free_port, gcs_store, object_store

from fineserve_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from service.config import Limits
from service.dataset_layout import summarize_image_folders
from service.remote_datasets import _translated, archive_format, check_url, fetch_archive, fetch_folder

PREFIXES = ("s3://fineserve-test/{tenant}/", "https://127.0.0.1/shared/")
Store = TypeVar("Store", ObjectStore, GcsStore)
CLASSES = {"red": (220, 30, 30), "blue": (30, 30, 220)}


@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folders(tmp_path_factory.mktemp("pets") / "pets", CLASSES, per_class=3, size=8)


@pytest.fixture(scope="module")
def pets_zip(pets: Path) -> bytes:
    return zip_folder(pets)  # once: a zip holds its entries' times, so each zip_folder call may differ


@contextmanager
def _filled(store: Store, pets: Path, pets_zip: bytes) -> Iterator[Store]:
    """store in this process's environment, holding alice/pets/ (a folder) and alice/pets.zip."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in store.env.items():
            mp.setenv(name, value)
        store.put_folder(pets, "alice/pets")
        store.put("alice/pets.zip", pets_zip)
        yield store


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, pets: Path, pets_zip: bytes) -> Iterator[ObjectStore]:
    with object_store(tmp_path_factory.mktemp("moto") / "moto.log") as store, _filled(store, pets, pets_zip):
        yield store


@pytest.fixture(scope="module")
def gs(tmp_path_factory: pytest.TempPathFactory, pets: Path, pets_zip: bytes) -> Iterator[GcsStore]:
    with gcs_store(tmp_path_factory.mktemp("gcs") / "gcs.log") as store, _filled(store, pets, pets_zip):
        yield store


@pytest.fixture(params=["s3", "gs"])
def bucket(request: pytest.FixtureRequest) -> tuple[str, ObjectStore | GcsStore]:
    """Each object store in turn, as (URL of its bucket, the store)."""
    return f"{request.param}://{BUCKET}", request.getfixturevalue(request.param)


def test_urls_are_confined_to_the_tenants_prefixes() -> None:
    assert check_url("s3://fineserve-test/alice/pets/", PREFIXES, "alice") == "s3://fineserve-test/alice/pets/"
    assert check_url("https://127.0.0.1/shared/a.zip", PREFIXES, "bob")
    refused = {
        "s3://fineserve-test/alice/pets/": "outside the URL prefixes tenant 'bob' may register from "
                                           "(s3://fineserve-test/bob/, https://127.0.0.1/shared/)",
        "s3://fineserve-test/bob/../alice/pets/": "must not contain '.', '..'",
        "s3://fineserve-test/bob/%2e%2e/alice/": "must not contain '.', '..'",
        "s3://fineserve-test/bob//x/": "empty path segments",
        "https://127.0.0.1/shared/a.zip?X-Amz-Signature=1": "must not carry a query",
        "https://user:pw@127.0.0.1/shared/a.zip": "credentials",
        "https://127.0.0.1.evil.example/shared/a.zip": "outside the URL prefixes",
        "s3://fineserve-test/bobby/x/": "outside the URL prefixes",
    }
    for uri, why in refused.items():
        with pytest.raises(InvalidArgument, match="uri .*" + why.replace("(", r"\(").replace(")", r"\)")
                           .replace(".", r"\.").replace("?", r"\?")):
            check_url(uri, PREFIXES, "bob")
    with pytest.raises(InvalidArgument, match=r"none configured \(--allowed-url-prefix\)"):
        check_url("s3://fineserve-test/bob/x/", (), "bob")
    assert archive_format("s3://b/x/data.tar.gz") == "tar" and archive_format("s3://b/x/folder/") is None


def test_a_folder_and_an_archive(bucket: tuple[str, ObjectStore | GcsStore], pets: Path, pets_zip: bytes,
                                 tmp_path: Path) -> None:
    url, _ = bucket
    files, nbytes = fetch_folder(f"{url}/alice/pets/", tmp_path / "folder", Limits())
    local = [f for f in pets.rglob("*") if f.is_file()]
    assert (files, nbytes) == (len(local), sum(f.stat().st_size for f in local))
    for f in local:
        assert (tmp_path / "folder" / f.relative_to(pets)).read_bytes() == f.read_bytes()
    assert list(summarize_image_folders(tmp_path / "folder").classes) == sorted(CLASSES)

    out = io.BytesIO()
    size, sha = fetch_archive(f"{url}/alice/pets.zip", out, Limits(), None)
    assert out.getvalue() == pets_zip and (size, sha) == (len(pets_zip), hashlib.sha256(pets_zip).hexdigest())


def test_bounds_and_missing_data(bucket: tuple[str, ObjectStore | GcsStore], tmp_path: Path) -> None:
    url, store = bucket
    with pytest.raises(ResourceExhausted, match="more than max_archive_files=3 objects"):
        fetch_folder(f"{url}/alice/pets/", tmp_path / "a", Limits(max_archive_files=3))
    with pytest.raises(ResourceExhausted, match="larger than 500 bytes"):
        fetch_folder(f"{url}/alice/pets/", tmp_path / "b", Limits(max_extracted_bytes=500))
    with pytest.raises(ResourceExhausted, match="larger than 500 bytes"):
        fetch_archive(f"{url}/alice/pets.zip", io.BytesIO(), Limits(max_upload_bytes=500), None)
    with pytest.raises(NotFound, match="no objects under this prefix"):
        fetch_folder(f"{url}/alice/cats/", tmp_path / "c", Limits())
    with pytest.raises(NotFound, match="does not exist"):
        fetch_archive(f"{url}/alice/cats.zip", io.BytesIO(), Limits(), None)
    store.put("alice/clash/x", b"1")
    store.put("alice/clash/x/y.png", b"2")  # object stores allow it; a folder cannot hold both
    with pytest.raises(InvalidArgument, match="collides with a folder or an object of the same name"):
        fetch_folder(f"{url}/alice/clash/", tmp_path / "e", Limits())


def test_an_unreachable_s3_endpoint_is_unavailable(s3: ObjectStore, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # gs:// is left out: gcsfs retries a refused connection six times (34 s measured) before the same answer.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(Unavailable, match=r"cannot reach the storage of .*retry later"):
        fetch_folder(f"s3://{BUCKET}/alice/pets/", tmp_path / "d", Limits())


class _Answering(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the status set on the server and a GCS-style JSON error body."""

    def do_GET(self) -> None:
        status, message = self.server.answer  # type: ignore[attr-defined]
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _answering(status: int, message: str) -> Iterator[str]:
    """A plain http server on loopback answering every GET so; its URL."""
    with http_server(_Answering) as server:
        server.answer = (status, message)  # type: ignore[attr-defined]
        yield url_of(server)


@pytest.mark.parametrize(("status", "message", "error", "says"), [
    (403, "fineserve@p.iam.gserviceaccount.com does not have storage.objects.get access", FailedPrecondition,
     "credentials may not read"),
    (401, "Anonymous caller does not have storage.objects.list access", FailedPrecondition,
     "credentials may not read"),
    (400, "Bucket is a requester pays bucket but no user project provided", FailedPrecondition,
     "refused the read (HTTP 400: 'Bucket is requester pays"),
    (400, "Billing account for this project is disabled", FailedPrecondition, "refused the read (HTTP 400"),
    (404, "No such object", NotFound, "does not exist|no objects under this prefix"),
])
def test_gcs_refusals_are_statuses_a_caller_can_act_on(status: int, message: str, error: type[Exception], says: str,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gcsfs raises each refusal its own way (FileNotFoundError, a bare OSError for 403, HttpError with a code):
    none may reach the caller as INTERNAL or as a 'retry later'."""
    with _answering(status, message) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        with pytest.raises(error, match=says.replace("(", r"\(")):
            fetch_archive(f"gs://{BUCKET}/alice/pets.zip", io.BytesIO(), Limits(), None)
        with pytest.raises(error, match=says.replace("(", r"\(")):
            fetch_folder(f"gs://{BUCKET}/alice/pets/", tmp_path / "x", Limits())


def test_a_store_that_stays_busy_is_unavailable() -> None:
    # What gcsfs raises once its own retries of a 503 or 429 are spent (six tries, about 30 s: too long to wait here).
    for status in (503, 429):
        with pytest.raises(Unavailable, match=f"HttpError: .*{status}.*retry later"), _translated("gs://b/x.zip"):
            raise HttpError({"code": status, "message": "Service Unavailable"})


class _Files(http.server.SimpleHTTPRequestHandler):
    """Serves its directory, except the paths in the server's `redirects`, which answer 302 to their target."""

    def do_GET(self) -> None:
        target = self.server.redirects.get(self.path)  # type: ignore[attr-defined]
        if target is None:
            return super().do_GET()
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def https_server(tmp_path: Path, pets_zip: bytes) -> Iterator[tuple[str, Pki, dict[str, str]]]:
    """A real TLS file server (127.0.0.1, a certificate from a private CA) serving pets.zip; (its URL, the PKI,
    the redirects it answers: path -> Location, for the test to fill)."""
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "www" / "shared").mkdir(parents=True)
    (tmp_path / "www" / "shared" / "pets.zip").write_bytes(pets_zip)
    with http_server(partial(_Files, directory=str(tmp_path / "www")), pki) as server:
        server.redirects = {}  # type: ignore[attr-defined]
        yield url_of(server), pki, server.redirects  # type: ignore[attr-defined]


def test_an_archive_over_https_with_a_private_ca(https_server: tuple[str, Pki, dict[str, str]], pets_zip: bytes,
                                                tmp_path: Path) -> None:
    base, pki, _ = https_server
    out = io.BytesIO()
    _, sha = fetch_archive(f"{base}/shared/pets.zip", out, Limits(), pki.ca)
    assert out.getvalue() == pets_zip and sha == hashlib.sha256(out.getvalue()).hexdigest()
    with pytest.raises(Unavailable, match="certificate verify failed"):  # the private CA is not trusted by default
        fetch_archive(f"{base}/shared/pets.zip", io.BytesIO(), Limits(), None)
    with pytest.raises(NotFound, match="does not exist"):
        fetch_archive(f"{base}/shared/cats.zip", io.BytesIO(), Limits(), pki.ca)
    with pytest.raises(InvalidArgument, match="must name an archive or a CSV file"):
        fetch_folder(f"{base}/shared/", tmp_path / "x", Limits())


def test_an_https_redirect_is_not_followed(https_server: tuple[str, Pki, dict[str, str]]) -> None:
    """An allowed host that redirects (an open redirect) must not carry the fetch past the allowed prefixes: here
    to a plain-http internal address, as a cloud metadata endpoint would be."""
    base, pki, redirects = https_server
    with _answering(200, "internal secret") as internal:
        redirects["/shared/moved.zip"] = f"{internal}/latest/meta-data.zip"
        out = io.BytesIO()
        with pytest.raises(InvalidArgument, match=f"redirects to '{internal}/latest/meta-data.zip'; redirects are "
                                                  "not followed"):
            fetch_archive(f"{base}/shared/moved.zip", out, Limits(), pki.ca)
        assert b"secret" not in out.getvalue()
