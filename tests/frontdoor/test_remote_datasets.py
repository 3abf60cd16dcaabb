"""Data sets from object storage and URLs (service/remote_datasets.py): the allowed-prefix checks, and fetches
from a real S3-compatible server (moto's server mode, a child process) and a real local https server with a
private CA: what lands on disk, the bounds, and the statuses a caller can act on."""

from __future__ import annotations

import hashlib
import http.server
import io
import ssl
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from security.helpers import Pki, image_folders, make_pki, zip_folder
from security.object_store import BUCKET, ObjectStore, free_port, object_store

from fineserve_common.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from service.config import Limits
from service.dataset_layout import summarize_image_folders
from service.remote_datasets import archive_format, check_url, fetch_archive, fetch_folder

PREFIXES = ("s3://fineserve-test/{tenant}/", "https://127.0.0.1/shared/")
CLASSES = {"red": (220, 30, 30), "blue": (30, 30, 220)}


@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folders(tmp_path_factory.mktemp("pets") / "pets", CLASSES, per_class=3, size=8)


@pytest.fixture(scope="module")
def pets_zip(pets: Path) -> bytes:
    return zip_folder(pets)  # once: a zip holds its entries' times, so each zip_folder call may differ


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, pets: Path, pets_zip: bytes) -> Iterator[ObjectStore]:
    with object_store(tmp_path_factory.mktemp("moto") / "moto.log") as store, pytest.MonkeyPatch.context() as mp:
        for name, value in store.env.items():
            mp.setenv(name, value)
        store.put_folder(pets, "alice/pets")
        store.put("alice/pets.zip", pets_zip)
        yield store


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


def test_a_folder_and_an_archive_from_s3(s3: ObjectStore, pets: Path, pets_zip: bytes, tmp_path: Path) -> None:
    files, nbytes = fetch_folder(f"s3://{BUCKET}/alice/pets/", tmp_path / "folder", Limits())
    local = [f for f in pets.rglob("*") if f.is_file()]
    assert (files, nbytes) == (len(local), sum(f.stat().st_size for f in local))
    for f in local:
        assert (tmp_path / "folder" / f.relative_to(pets)).read_bytes() == f.read_bytes()
    assert list(summarize_image_folders(tmp_path / "folder").classes) == sorted(CLASSES)

    out = io.BytesIO()
    size, sha = fetch_archive(f"s3://{BUCKET}/alice/pets.zip", out, Limits(), None)
    assert out.getvalue() == pets_zip and (size, sha) == (len(pets_zip), hashlib.sha256(pets_zip).hexdigest())


def test_bounds_missing_data_and_an_unreachable_store(s3: ObjectStore, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ResourceExhausted, match="more than max_archive_files=3 objects"):
        fetch_folder(f"s3://{BUCKET}/alice/pets/", tmp_path / "a", Limits(max_archive_files=3))
    with pytest.raises(ResourceExhausted, match="larger than 500 bytes"):
        fetch_folder(f"s3://{BUCKET}/alice/pets/", tmp_path / "b", Limits(max_extracted_bytes=500))
    with pytest.raises(ResourceExhausted, match="larger than 500 bytes"):
        fetch_archive(f"s3://{BUCKET}/alice/pets.zip", io.BytesIO(), Limits(max_upload_bytes=500), None)
    with pytest.raises(NotFound, match="no objects under this prefix"):
        fetch_folder(f"s3://{BUCKET}/alice/cats/", tmp_path / "c", Limits())
    with pytest.raises(NotFound, match="does not exist"):
        fetch_archive(f"s3://{BUCKET}/alice/cats.zip", io.BytesIO(), Limits(), None)
    s3.put("alice/clash/x", b"1")
    s3.put("alice/clash/x/y.png", b"2")  # S3 allows it; a folder cannot hold both
    with pytest.raises(InvalidArgument, match="collides with a folder or an object of the same name"):
        fetch_folder(f"s3://{BUCKET}/alice/clash/", tmp_path / "e", Limits())
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(Unavailable, match=r"cannot reach the storage of .*retry later"):
        fetch_folder(f"s3://{BUCKET}/alice/pets/", tmp_path / "d", Limits())


@pytest.fixture
def https_server(tmp_path: Path, pets_zip: bytes) -> Iterator[tuple[str, Pki]]:
    """A real TLS file server (127.0.0.1, a certificate from a private CA) serving pets.zip."""
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "www" / "shared").mkdir(parents=True)
    (tmp_path / "www" / "shared" / "pets.zip").write_bytes(pets_zip)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", pki
    server.shutdown()
    server.server_close()


def test_an_archive_over_https_with_a_private_ca(https_server: tuple[str, Pki], pets_zip: bytes,
                                                tmp_path: Path) -> None:
    base, pki = https_server
    out = io.BytesIO()
    _, sha = fetch_archive(f"{base}/shared/pets.zip", out, Limits(), pki.ca)
    assert out.getvalue() == pets_zip and sha == hashlib.sha256(out.getvalue()).hexdigest()
    with pytest.raises(Unavailable, match="certificate verify failed"):  # the private CA is not trusted by default
        fetch_archive(f"{base}/shared/pets.zip", io.BytesIO(), Limits(), None)
    with pytest.raises(NotFound, match="does not exist"):
        fetch_archive(f"{base}/shared/cats.zip", io.BytesIO(), Limits(), pki.ca)
    with pytest.raises(InvalidArgument, match="must name an archive or a CSV file"):
        fetch_folder(f"{base}/shared/", tmp_path / "x", Limits())
