"""upload_dataset: header first, then chunks that add up to the declared sha256 and size."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import zipfile

import pytest

from fineserve.v1 import datasets_pb2, datasets_pb2_grpc
from fineserve_client import Client
from fineserve_client.cli import main


class RecordingDatasets(datasets_pb2_grpc.DatasetsServicer):
    def __init__(self) -> None:
        self.messages: list[datasets_pb2.UploadDatasetRequest] = []

    def UploadDataset(self, request_iterator, context):
        self.messages = list(request_iterator)
        header = self.messages[0].header
        return datasets_pb2.Dataset(
            id="ds-0123456789abcdef",
            name=header.name,
            layout=header.layout,
            sha256=header.sha256,
            size_bytes=header.size_bytes,
            source="upload",
        )


def _make_folder(root):
    files = {
        "train/cat/a.jpg": b"cat-a" * 100,
        "train/dog/b.jpg": b"dog-b" * 50,
        "train/dog/c.png": b"dog-c",
        "valid/cat/d.jpg": b"cat-d" * 10,
        "notes.txt": b"hello",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _split(messages):
    assert messages, "nothing was sent"
    assert messages[0].WhichOneof("part") == "header"
    assert all(m.WhichOneof("part") == "chunk" for m in messages[1:])
    return messages[0].header, b"".join(m.chunk for m in messages[1:])


def test_upload_folder_sends_header_then_chunks_of_a_zip(serve, tmp_path):
    folder = tmp_path / "pets"
    files = _make_folder(folder)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"do not send")
    os.symlink(outside, folder / "train" / "cat" / "link.jpg")
    os.symlink(tmp_path, folder / "loop")

    servicer = RecordingDatasets()
    with Client(serve(servicer)) as client:
        ds = client.upload_dataset(folder, chunk_size=64)

    header, data = _split(servicer.messages)
    assert len(servicer.messages) > 2  # several chunks
    assert all(len(m.chunk) <= 64 for m in servicer.messages[1:])
    assert header.name == "pets"
    assert header.layout == datasets_pb2.IMAGE_FOLDERS
    assert header.format == datasets_pb2.ZIP
    assert header.size_bytes == len(data)
    assert header.sha256 == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert names == sorted(files)  # relative names, sorted, no links followed
        for rel, content in files.items():
            assert zf.read(rel) == content
    assert ds.id == "ds-0123456789abcdef" and ds.sha256 == header.sha256


def test_upload_folder_is_deterministic(serve, tmp_path):
    _make_folder(tmp_path / "a")
    servicer = RecordingDatasets()
    with Client(serve(servicer)) as client:
        first = client.upload_dataset(tmp_path / "a", name="x").sha256
        second = client.upload_dataset(tmp_path / "a", name="x").sha256
    assert first == second


def test_upload_existing_tar_gz_as_is(serve, tmp_path):
    folder = tmp_path / "pets"
    _make_folder(folder)
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=".")

    servicer = RecordingDatasets()
    with Client(serve(servicer)) as client:
        client.upload_dataset(str(archive), name="my pets", layout="IMAGE_FOLDERS")

    header, data = _split(servicer.messages)
    assert data == archive.read_bytes()
    assert header.format == datasets_pb2.TAR
    assert header.name == "my pets"
    assert header.sha256 == hashlib.sha256(data).hexdigest()


def test_upload_zip_default_name(serve, tmp_path):
    archive = tmp_path / "flowers.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rose/1.jpg", b"x")
    servicer = RecordingDatasets()
    with Client(serve(servicer)) as client:
        client.upload_dataset(archive)
    header, data = _split(servicer.messages)
    assert (header.name, header.format, data) == ("flowers", datasets_pb2.ZIP, archive.read_bytes())


def test_upload_rejects_bad_inputs(tmp_path):
    (tmp_path / "data.rar").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    with Client("127.0.0.1:1") as client:
        with pytest.raises(ValueError, match="not a folder"):
            client.upload_dataset(tmp_path / "data.rar")
        with pytest.raises(ValueError, match="no files"):
            client.upload_dataset(tmp_path / "empty")
        with pytest.raises(FileNotFoundError):
            client.upload_dataset(tmp_path / "missing")
        with pytest.raises(ValueError, match="layout"):
            client.upload_dataset(tmp_path / "data.rar", layout="pictures")


def test_upload_removes_the_temporary_zip(serve, tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    _make_folder(tmp_path / "pets")
    with Client(serve(RecordingDatasets())) as client:
        client.upload_dataset(tmp_path / "pets")
    assert list(temp.iterdir()) == []


class ListingDatasets(RecordingDatasets):
    def ListDatasets(self, request, context):
        ds = datasets_pb2.Dataset(id="ds-1", name="pets", layout=datasets_pb2.IMAGE_FOLDERS, source="upload")
        ds.summary.classes.extend(["cat", "dog"])
        return datasets_pb2.ListDatasetsResponse(datasets=[ds])


def test_cli_upload_and_datasets(serve, tmp_path, capsys):
    _make_folder(tmp_path / "pets")
    servicer = ListingDatasets()
    target = serve(servicer)
    assert main(["--target", target, "upload", str(tmp_path / "pets"), "--name", "p"]) == 0
    out = capsys.readouterr().out
    assert "id:" in out and "ds-0123456789abcdef" in out
    assert servicer.messages[0].header.name == "p"
    assert main(["--target", target, "datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "LAYOUT"]
    assert lines[1].split()[:4] == ["ds-1", "pets", "image_folders", "upload"]
    assert main(["--target", target, "datasets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["summary"]["classes"] == ["cat", "dog"]
