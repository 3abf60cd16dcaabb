"""RegisterDataset from s3:// through the real front door (mTLS, API keys) and a real S3-compatible server: the
copy lands in the store, layout-checked, a job trains on it; a tenant reaches only its own prefix; a refused fetch
leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import grpc

from fineserve.v1 import datasets_pb2, training_pb2
from security.conftest import TINY, SecureServer
from security.helpers import image_folders, zip_folder
from security.object_store import BUCKET, ObjectStore

CLASSES = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def _register(secure: SecureServer, tenant: str, uri: str) -> tuple[grpc.StatusCode, str]:
    stubs = secure.stubs(tenant)
    return stubs.code(stubs.datasets.RegisterDataset,
                      datasets_pb2.RegisterDatasetRequest(name="pets", layout=datasets_pb2.IMAGE_FOLDERS, uri=uri))


def test_register_from_s3_then_train(secure: SecureServer, s3: ObjectStore, tmp_path: Path) -> None:
    folder = image_folders(tmp_path / "pets", CLASSES, per_class=4, size=16)
    files = s3.put_folder(folder, "alice/pets")
    alice = secure.client("alice")
    ds = alice.register_dataset(f"s3://{BUCKET}/alice/pets/", name="pets-s3")
    assert (ds.source, ds.uri, ds.file_count) == ("fetched", f"s3://{BUCKET}/alice/pets/", files)
    assert list(ds.summary.classes) == sorted(CLASSES) and ds.summary.train_items == 8
    stored = secure.proc.data_dir / "datasets" / ds.id
    assert sorted(p.relative_to(stored) for p in stored.rglob("*.png")) == sorted(
        p.relative_to(folder) for p in folder.rglob("*.png"))
    assert alice.get_dataset(ds.id).uri == ds.uri

    job = alice.create_fine_tune_job(ds.id, "pets-s3", **TINY)
    done = alice.wait(job.id, progress=False, timeout=420)
    assert done.state == training_pb2.SUCCEEDED, done.error

    s3.put("alice/archives/pets.zip", zip_folder(folder))
    zipped = alice.register_dataset(f"s3://{BUCKET}/alice/archives/pets.zip", name="pets-zip")
    assert zipped.sha256 and list(zipped.summary.classes) == sorted(CLASSES)
    alice.delete_dataset(zipped.id)  # a fetched copy is the store's: deleting the data set removes it
    assert not (secure.proc.data_dir / "datasets" / zipped.id).exists()


def test_tenants_prefixes_and_refusals_leave_nothing(secure: SecureServer, s3: ObjectStore, tmp_path: Path) -> None:
    folder = image_folders(tmp_path / "pets", CLASSES, per_class=2, size=8)
    s3.put_folder(folder, "alice/private")
    code, details = _register(secure, "bob", f"s3://{BUCKET}/alice/private/")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"outside the URL prefixes tenant 'bob' may register from (s3://{BUCKET}/bob/)" in details

    s3.put("bob/big.zip", b"\0" * 2_100_000)  # over the secure server's --max-upload-bytes 2000000
    code, details = _register(secure, "bob", f"s3://{BUCKET}/bob/big.zip")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than 2000000 bytes" in details
    s3.put_folder(image_folders(tmp_path / "one", {"only": (0, 0, 0)}, per_class=2, size=8), "bob/one-class")
    code, details = _register(secure, "bob", f"s3://{BUCKET}/bob/one-class/")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs at least 2 class folders" in details
    code, details = _register(secure, "bob", f"s3://{BUCKET}/bob/nothing-here/")
    assert code == grpc.StatusCode.NOT_FOUND and "no objects under this prefix" in details
    assert list((secure.proc.data_dir / "tmp").iterdir()) == []  # no partial download or extraction left
