"""Path tricks: registered paths and weights files cannot leave the allowed roots (`..`, symlinks, absolute
paths elsewhere, other hosts, NUL bytes); uploaded archives cannot write outside their folder (zip-slip,
absolute names, links)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_common.errors import InvalidArgument
from security.conftest import SecureServer
from security.helpers import image_folders, png, tar_bytes, tar_member, upload_requests, zip_bytes, zip_with_symlink
from service.paths import check_links_inside, resolve_under_roots

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    image_folders(root / "ds", {"a": (1, 2, 3), "b": (4, 5, 6)}, per_class=2, size=4)
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "x.png").write_bytes(png(4, 4))
    return root.resolve(), outside.resolve()


@pytest.mark.parametrize("uri", [
    "{root}/../outside/secret",  # `..`
    "{root}/ds/../../outside/secret",
    "{outside}/secret",  # absolute path elsewhere
    "/etc",
    "/",
    "{root}/link-out",  # a symlink in the root pointing outside
    "{root}/link-out/../../outside",
    "file://{outside}/secret",
    "file://evil.example.com{root}/ds",  # another host
    "file://{root}/..%2F..%2Foutside",  # encoded `..`
    "ds",  # relative
    "./{root}/ds",
    "{root}/ds\x00/../../outside",  # NUL byte
    "file://{root}/ds%00",  # an encoded NUL byte
    "{root}/ds\n",  # a control character
    "file://{root}/ds%1b%5b2J",  # an encoded one
    "{root}/" + "a/" * 3000,  # too long
    "{root}/loop",  # a symlink loop
])
def test_resolve_refuses_escapes(tree: tuple[Path, Path], uri: str) -> None:
    root, outside = tree
    (root / "link-out").symlink_to(outside)
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(InvalidArgument) as e:
        resolve_under_roots(uri.format(root=root, outside=outside), (root,), "uri")
    assert "uri" in e.value.message


def test_resolve_accepts_inside_paths(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "link-in").symlink_to(root / "ds")
    for uri in (f"{root}/ds", f"{root}/ds/../ds/", f"file://{root}/ds", f"file://localhost{root}/ds",
                f"{root}/link-in"):
        assert resolve_under_roots(uri, (root,), "uri") == root / "ds"


def test_links_inside_a_registered_folder(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    check_links_inside(root / "ds", (root,), "uri")
    (root / "ds" / "train" / "a" / "inner.png").symlink_to(root / "ds" / "train" / "b" / "0.png")
    check_links_inside(root / "ds", (root,), "uri")  # a link within the roots is fine
    (root / "ds" / "train" / "a" / "stolen.png").symlink_to(outside / "secret" / "x.png")
    with pytest.raises(InvalidArgument, match="symbolic link"):
        check_links_inside(root / "ds", (root,), "uri")
    os.unlink(root / "ds" / "train" / "a" / "stolen.png")
    (root / "ds" / "train" / "c").symlink_to(outside / "secret", target_is_directory=True)
    with pytest.raises(InvalidArgument, match="outside the allowed roots"):
        check_links_inside(root / "ds", (root,), "uri")


def test_register_dataset_path_tricks(secure: SecureServer) -> None:
    carol = secure.stubs("carol")
    root, outside = secure.root.resolve(), secure.outside.resolve()
    if not (root / "escape").exists():
        (root / "escape").symlink_to(outside / "secret", target_is_directory=True)
    mixed = root / "mixed"
    if not mixed.exists():
        image_folders(mixed, {"x": (9, 9, 9), "y": (99, 99, 99)}, per_class=2, size=4)
        (mixed / "train" / "x" / "passwd.png").symlink_to("/etc/passwd")

    def register(uri: str) -> tuple[grpc.StatusCode, str]:
        return carol.code(carol.datasets.RegisterDataset, datasets_pb2.RegisterDatasetRequest(
            name="trick", layout=datasets_pb2.IMAGE_FOLDERS, uri=uri))

    for uri, expect in [
        (f"{root}/../outside/secret", "outside the allowed roots"),
        (str(outside / "secret"), "outside the allowed roots"),
        ("/etc", "outside the allowed roots"),
        (f"{root}/escape", "outside the allowed roots"),
        (str(mixed), "symbolic link"),
        ("good", "absolute path"),
        (f"file://attacker{root}/good", "another host"),
        (f"{root}/good\x00", "NUL"),
    ]:
        code, details = register(uri)
        assert code == INVALID and expect in details, f"{uri!r}: {code.name} {details}"
    code, _ = register(f"{root}/good")
    assert code == grpc.StatusCode.OK
    datasets = carol.call(carol.datasets.ListDatasets, datasets_pb2.ListDatasetsRequest()).datasets
    assert {d.uri for d in datasets if d.source == "registered"} == {str(root / "good")}


def test_weights_file_outside_roots(secure: SecureServer) -> None:
    carol = secure.stubs("carol")
    ds = carol.call(carol.datasets.RegisterDataset, datasets_pb2.RegisterDatasetRequest(
        name="good", layout=datasets_pb2.IMAGE_FOLDERS, uri=str(secure.root / "good")))
    for path in ("/etc/passwd", f"{secure.root}/../outside/secret/train/x/0.png", "relative.safetensors"):
        code, details = carol.code(carol.training.CreateFineTuneJob, training_pb2.CreateFineTuneJobRequest(
            task=training_pb2.IMAGE_CLASSIFICATION, model_name="w", dataset_id=ds.id,
            base=training_pb2.BaseModel(weights_file=path)))
        assert code == INVALID and "base.weights_file" in details, details


@pytest.mark.parametrize("archive,expect", [
    (zip_bytes({"train/a/1.png": b"x", "../../evil.png": b"x"}), "escapes"),
    (zip_bytes({"train/a/1.png": b"x", "train/../../../evil.png": b"x"}), "escapes"),
    (zip_bytes({"train/a/1.png": b"x", "/tmp/evil.png": b"x"}), "absolute"),
    (zip_bytes({"train/a/1.png": b"x", "C:/evil.png": b"x"}), "absolute"),
    (zip_bytes({"train/a/1.png": b"x", "..\\..\\evil.png": b"x"}), "escapes"),
    (zip_with_symlink("train/a/link.png", "/etc/passwd"), "link"),
    (tar_bytes([(tar_member("train/a/1.png"), b"x"), (tar_member("train/a/l.png", "/etc/passwd"), b"")]), "link"),
    (tar_bytes([(tar_member("train/a/hard.png", "../../x", hard=True), b"")]), "link"),
    (tar_bytes([(tar_member("../evil.png"), b"x")]), "escapes"),
    (tar_bytes([(tar_member("/abs/evil.png"), b"x")]), "absolute"),
])
def test_upload_zip_slip_and_links(secure: SecureServer, archive: bytes, expect: str) -> None:
    carol = secure.stubs("carol")
    fmt = datasets_pb2.ZIP if archive[:2] == b"PK" else datasets_pb2.TAR
    code, details = carol.code(carol.datasets.UploadDataset, upload_requests(archive, "slip", fmt=fmt))
    assert code == INVALID and expect in details, details
    data_dir = secure.proc.data_dir
    assert not list((data_dir / "tmp").iterdir())
    assert not (data_dir / "evil.png").exists() and not (data_dir.parent / "evil.png").exists()
    assert not Path("/tmp/evil.png").exists() and not Path("/abs").exists()
