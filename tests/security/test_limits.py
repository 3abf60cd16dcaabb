"""Every limit refuses with RESOURCE_EXHAUSTED (or INVALID_ARGUMENT) and a message naming it; bombs are
refused before they cost memory or disk; nothing is left behind."""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import grpc
import pytest

from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, models_pb2, training_pb2
from security.conftest import LIMITS, SecureServer, Trained
from security.helpers import (
    png,
    png_header_only,
    tar_bytes,
    tar_gz_bomb,
    tar_member,
    upload_requests,
    zip_bytes,
)
from service.archives import RATIO_FLOOR_BYTES, ArchiveError, ArchiveTooLarge, extract
from service.config import Limits, parse_settings

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _refused(result: tuple[grpc.StatusCode, str], limit: str, code: grpc.StatusCode = EXHAUSTED) -> None:
    got, details = result
    assert got == code, f"{got.name}: {details}"
    assert limit in details, details


def _classify(model: str, images: list[bytes]) -> inference_pb2.ClassifyRequest:
    return inference_pb2.ClassifyRequest(model=common_pb2.ModelRef(name=model),
                                         images=[common_pb2.Image(data=d, name=str(i)) for i, d in enumerate(images)])


def test_image_limits(secure: SecureServer, alice_model: Trained) -> None:
    alice = secure.stubs("alice")
    small = png(8, 8)
    _refused(alice.code(alice.inference.Classify, _classify("pets", [small] * 9)), "max_images_per_request=8")
    # 1200 x 1000 = 1.2 M pixels, over max_image_pixels=1000000, in a file of a few KB
    _refused(alice.code(alice.inference.Classify, _classify("pets", [small, png(1200, 1000)])),
             "image 1: 1200x1000 = 1200000 pixels is over max_image_pixels=1000000")
    # decompression bombs: headers claiming 30000 x 30000 and 65535 x 65535 pixels, under 200 bytes each
    for w, h in ((30000, 30000), (65535, 65535)):
        bomb = png_header_only(w, h)
        assert len(bomb) < 200
        _refused(alice.code(alice.inference.Classify, _classify("pets", [bomb])), "max_image_pixels=1000000")
    # a request larger than max_message_bytes never reaches a servicer
    code, details = alice.code(alice.inference.Classify, _classify("pets", [os.urandom(4_100_000)]))
    assert code == EXHAUSTED and "larger than max" in details, details
    # formats outside the documented ones, and garbage, are INVALID_ARGUMENT
    import io

    from PIL import Image
    tiff = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiff, "TIFF")
    for data in (tiff.getvalue(), b"\x89PNG\r\n\x1a\n garbage", b"GIF89a" + b"\0" * 3):
        _refused(alice.code(alice.inference.Classify, _classify("pets", [data])), "image 0",
                 grpc.StatusCode.INVALID_ARGUMENT)
    # at the limit is fine
    ok = alice.call(alice.inference.Classify, _classify("pets", [png(1000, 1000)] + [small] * 7))
    assert len(ok.results) == 8


def test_text_limits(secure: SecureServer, alice_model: Trained) -> None:
    alice = secure.stubs("alice")
    ref = common_pb2.ModelRef(name="pets")
    _refused(alice.code(alice.inference.PredictText, inference_pb2.PredictTextRequest(model=ref, texts=["x" * 1001])),
             "max_text_chars=1000")
    _refused(alice.code(alice.inference.PredictText, inference_pb2.PredictTextRequest(model=ref, texts=["x"] * 5)),
             "max_texts_per_request=4")
    # within the limits the request reaches the model check: "pets" is an image model
    code, details = alice.code(alice.inference.PredictText, inference_pb2.PredictTextRequest(model=ref,
                                                                                            texts=["x" * 1000]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "TEXT_CLASSIFICATION" in details, details


def test_upload_limits(secure: SecureServer) -> None:
    carol = secure.stubs("carol")
    big = os.urandom(2_100_000)
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(big, "big", size=len(big))),
             "max_upload_bytes=2000000")
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(big, "big", size=0)),  # size not declared
             "max_upload_bytes=2000000")
    many = zip_bytes({f"train/{c}/{i}.png": b"x" for c in "ab" for i in range(101)})
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(many, "many")), "max_archive_files=200")
    many_tar = tar_bytes([(tar_member(f"train/a/{i}.png"), b"x") for i in range(201)])
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(many_tar, "many", fmt=datasets_pb2.TAR)),
             "max_archive_files=200")
    assert not list((secure.proc.data_dir / "tmp").iterdir())


def test_zip_bombs(secure: SecureServer) -> None:
    carol = secure.stubs("carol")
    # one entry: 20 MB of zeros deflate to ~20 KB (ratio ~1000, limit 50)
    bomb = zip_bytes({"train/a/1.png": b"x", "train/b/zeros.png": b"\0" * 20_000_000})
    assert len(bomb) < 100_000
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(bomb, "bomb")), "max_archive_ratio=50")
    # many entries, each under the floor, together a bomb
    spread = zip_bytes({f"train/{c}/{i}.png": b"\0" * 900_000 for c in "ab" for i in range(20)})
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(spread, "spread")), "max_archive_ratio=50")
    # a compressed tar declares no compressed sizes: the bytes written are counted instead
    tgz = tar_gz_bomb(20_000_000)
    _refused(carol.code(carol.datasets.UploadDataset, upload_requests(tgz, "tgz", fmt=datasets_pb2.TAR)),
             "max_archive_ratio=50")
    data_dir = secure.proc.data_dir
    assert not list((data_dir / "tmp").iterdir())
    assert sum(f.stat().st_size for f in (data_dir / "datasets").rglob("*") if f.is_file()) < 50_000_000


def test_concurrent_jobs_per_tenant(secure: SecureServer) -> None:
    carol = secure.stubs("carol")
    ds = carol.call(carol.datasets.RegisterDataset, datasets_pb2.RegisterDatasetRequest(
        name="good", layout=datasets_pb2.IMAGE_FOLDERS, uri=str(secure.root / "good")))
    req = training_pb2.CreateFineTuneJobRequest(
        task=training_pb2.IMAGE_CLASSIFICATION, model_name="quota", dataset_id=ds.id,
        base=training_pb2.BaseModel(random_init=True),
        hyperparameters=training_pb2.Hyperparameters(epochs=50, freeze_epochs=0, image_size=16, lr=1e-3))
    jobs = []
    try:
        for i in range(LIMITS["max-concurrent-jobs-per-tenant"]):
            jobs.append(carol.call(carol.training.CreateFineTuneJob,
                                   training_pb2.CreateFineTuneJobRequest(request_id=f"q{i}", **_fields(req))))
        _refused(carol.code(carol.training.CreateFineTuneJob, req), "max_concurrent_jobs_per_tenant=2")
        _refused(carol.code(carol.training.FindLearningRate, training_pb2.FindLearningRateRequest(
            task=training_pb2.IMAGE_CLASSIFICATION, dataset_id=ds.id, base=training_pb2.BaseModel(random_init=True))),
            "max_concurrent_jobs_per_tenant=2")
        # a repeated idempotent request is not a new job: still answered
        again = carol.call(carol.training.CreateFineTuneJob, training_pb2.CreateFineTuneJobRequest(
            request_id="q0", **_fields(req)))
        assert again.id == jobs[0].id
        # the limit is per tenant: alice may still queue
        alice = secure.stubs("alice")
        code, _ = alice.code(alice.training.CreateFineTuneJob, training_pb2.CreateFineTuneJobRequest(
            request_id="other-tenant", **_fields(req)))
        assert code == grpc.StatusCode.NOT_FOUND  # (carol's dataset), not RESOURCE_EXHAUSTED
        carol.call(carol.training.CancelJob, training_pb2.CancelJobRequest(id=jobs.pop().id))
        jobs.append(carol.call(carol.training.CreateFineTuneJob, req))  # room again
    finally:
        for job in jobs:
            carol.call(carol.training.CancelJob, training_pb2.CancelJobRequest(id=job.id))


def _fields(req: training_pb2.CreateFineTuneJobRequest) -> dict:
    return {f.name: v for f, v in req.ListFields() if f.name != "request_id"}


def test_limits_have_flags_and_env() -> None:
    s = parse_settings(["--max-image-pixels", "123", "--max-archive-ratio", "7.5", "--max-text-chars", "9",
                        "--max-texts-per-request", "3", "--max-concurrent-jobs-per-tenant", "5"])
    assert (s.limits.max_image_pixels, s.limits.max_archive_ratio, s.limits.max_text_chars,
            s.limits.max_texts_per_request, s.limits.max_concurrent_jobs_per_tenant) == (123, 7.5, 9, 3, 5)
    os.environ["FINESERVE_MAX_IMAGE_PIXELS"] = "77"
    try:
        assert parse_settings([]).limits.max_image_pixels == 77
    finally:
        del os.environ["FINESERVE_MAX_IMAGE_PIXELS"]
    with pytest.raises(SystemExit):
        parse_settings(["--max-archive-ratio", "0.5"])
    with pytest.raises(SystemExit):
        parse_settings(["--tls-cert", "c.pem"])  # without its key


# -- archive extraction, without a server ---------------------------------------------------------------


def test_small_compressible_files_pass_the_ratio_check(tmp_path: Path) -> None:
    """Under RATIO_FLOOR_BYTES a file may compress as well as it likes (a blank mask, a CSV)."""
    arc = tmp_path / "a.zip"
    arc.write_bytes(zip_bytes({"a/blank.png": b"\0" * (RATIO_FLOOR_BYTES - 1), "b/x.png": b"x"}))
    assert extract(arc, "zip", tmp_path / "out", Limits(max_archive_ratio=10))[0] == 2


def test_declared_sizes_are_checked_before_extraction(tmp_path: Path) -> None:
    arc = tmp_path / "a.zip"
    arc.write_bytes(zip_bytes({"a/big.png": b"\0" * 3_000_000}))
    with pytest.raises(ArchiveTooLarge, match="max_extracted_bytes=1000000"):
        extract(arc, "zip", tmp_path / "o1", Limits(max_extracted_bytes=1_000_000, max_archive_ratio=1e9))
    with pytest.raises(ArchiveTooLarge, match=r"a/big.png.*max_archive_ratio=100"):
        extract(arc, "zip", tmp_path / "o2", Limits(max_archive_ratio=100))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_lying_zip_header_is_bounded(tmp_path: Path) -> None:
    """An entry whose header under-declares its size: zipfile stops at the declared size (CRC fails)."""
    arc = tmp_path / "a.zip"
    with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/x.png", b"\0" * 5_000_000)
    data = bytearray(arc.read_bytes())
    # patch the uncompressed size in the central directory and the local header to 10 bytes
    for sig, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        i = data.find(sig)
        data[i + offset:i + offset + 4] = (10).to_bytes(4, "little")
    arc.write_bytes(bytes(data))
    with pytest.raises(ArchiveError):
        extract(arc, "zip", tmp_path / "out", Limits())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_compressed_tar_bombs(tmp_path: Path, mode: str) -> None:
    arc = tmp_path / "a.tar"
    arc.write_bytes(tar_bytes([(tarfile.TarInfo("a/zeros.png"), b"\0" * 5_000_000)], mode=mode))
    with pytest.raises(ArchiveTooLarge, match="max_archive_ratio=20"):
        extract(arc, "tar", tmp_path / "out", Limits(max_archive_ratio=20))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("junk", [b"PK\x03\x04" + os.urandom(200), b"\x1f\x8b" + os.urandom(100),
                                  b"BZh9" + os.urandom(50), b"\xfd7zXZ\x00" + os.urandom(50)])
def test_corrupt_archives_are_invalid_not_internal(tmp_path: Path, junk: bytes) -> None:
    arc = tmp_path / "a.bin"
    arc.write_bytes(junk)
    for fmt in ("zip", "tar"):
        with pytest.raises(ArchiveError):
            extract(arc, fmt, tmp_path / f"out-{fmt}", Limits())


def test_serving_replicas_apply_the_pixel_limit_and_confine_model_ids() -> None:
    """The replica (behind the front door's own check) refuses the same images, and loads only store paths."""
    from PIL import Image

    from worker.engine import InvalidImage
    from worker.engine.images import check_image
    from worker.serving import ModelServer

    saved = Image.MAX_IMAGE_PIXELS
    try:
        replica = ModelServer.func_or_class("/nonexistent/models", 2, 1_000_000)
        assert Image.MAX_IMAGE_PIXELS == 1_000_000
        with pytest.raises(InvalidImage, match="over the limit of 1000000"):
            check_image(png(1001, 1000))
        for bomb in (png_header_only(30000, 30000), png_header_only(1001, 1000)):
            with pytest.raises(InvalidImage):
                check_image(bomb)
        check_image(png(1000, 1000))
        for model_id in ("../../etc", "/etc", "alice/../../../etc") * 2:  # refused again: resolutions are memoised
            with pytest.raises(ValueError, match="outside the model store"):
                replica._load(model_id)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def test_ids_of_any_length_and_unusable_names(secure: SecureServer) -> None:
    """Issue 24: a 20,000-character id was echoed whole and the answer became RESOURCE_EXHAUSTED "metadata size
    exceeds"; a NUL byte in a labels CSV entry or a job's file field was INTERNAL. Each is now refused naming the
    field, its value quoted clipped."""
    s = secure.stubs("alice")
    long_id = "x" * 20_000
    for method, request in [
        (s.datasets.GetDataset, datasets_pb2.GetDatasetRequest(id=long_id)),
        (s.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(id=long_id)),
        (s.training.GetJob, training_pb2.GetJobRequest(id=long_id)),
        (s.training.CancelJob, training_pb2.CancelJobRequest(id=long_id)),
        (s.models.GetModel, models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name=long_id))),
        (s.inference.Classify, _classify(long_id, [png(4, 4)])),
        (s.training.CreateFineTuneJob, training_pb2.CreateFineTuneJobRequest(
            task=training_pb2.IMAGE_CLASSIFICATION, model_name="m", dataset_id=long_id,
            base=training_pb2.BaseModel(random_init=True))),
    ]:
        code, details = s.code(method, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details[:300]}"
        assert "20000 characters" in details and len(details) < 300, details
    labels = zip_bytes({"img/a.png": png(4, 4), "labels.csv": b"fname,labels\nimg/a\0.png,x\n"})
    _refused(s.code(s.datasets.UploadDataset, upload_requests(labels, layout=datasets_pb2.IMAGE_LABELS_CSV)),
             r"labels.csv line 2: file name 'img/a\x00.png' holds a NUL byte",
             grpc.StatusCode.INVALID_ARGUMENT)
    ratings = s.call(s.datasets.UploadDataset, upload_requests(b"u,i,r\n1,2,3\n", fmt=datasets_pb2.CSV,
                                                               layout=datasets_pb2.RATINGS_CSV))
    for collab in ({"ratings_file": "data.csv\0"}, {"items_file": "i" * 5000}):
        _refused(s.code(s.training.CreateFineTuneJob, training_pb2.CreateFineTuneJobRequest(
            task=training_pb2.COLLABORATIVE_FILTERING, model_name="m", dataset_id=ratings.id,
            collab=training_pb2.CollabOptions(**collab))), f"collab.{next(iter(collab))}",
            grpc.StatusCode.INVALID_ARGUMENT)
