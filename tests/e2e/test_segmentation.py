"""Segmentation end to end on camvid_tiny: upload an IMAGE_MASKS dataset, fine-tune a U-Net (random ResNet-18
encoder: no ImageNet weights here) with progressive resizing, Segment the validation images through gRPC and
score the masks against the true ones; then the mask contract and the refusals."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from e2e.helpers import TERMINAL, Api, rpc_code, upload_requests, wait_for, zip_folder
from fineserve.v1 import common_pb2, datasets_pb2, inference_pb2, models_pb2, training_pb2
from harness.launcher import ServerProcess

# Half size (64x48) then full size (128x96), everything trainable: a random encoder has nothing to keep.
HYPER = training_pb2.Hyperparameters(
    image_size=128,
    batch_size=8,
    lr=1e-2,
    stages=[
        training_pb2.TrainingStage(epochs=3, freeze_to=0, image_size=64),
        training_pb2.TrainingStage(epochs=1, freeze_to=0, image_size=128),
    ],
)
VOID = 30  # codes.txt line 31
EVERY_NTH_VALID = 5


@pytest.fixture(scope="module")
def camvid(shared_data: Path) -> Path:
    return shared_data / "camvid_tiny"


@pytest.fixture(scope="module")
def codes(camvid: Path) -> list[str]:
    return camvid.joinpath("codes.txt").read_text().split()


@pytest.fixture(scope="module")
def valid_names(camvid: Path) -> list[str]:
    return [p.name for p in sorted((camvid / "images").glob("*.png"))][::EVERY_NTH_VALID]


def _mask(camvid: Path, name: str) -> np.ndarray:
    return np.array(Image.open(camvid / "labels" / f"{Path(name).stem}_P.png")).astype(np.int64)


@pytest.fixture(scope="module")
def trained(server: ServerProcess, camvid: Path, valid_names: list[str]) -> Iterator[tuple[training_pb2.Job, float]]:
    """The fine-tune job (uploaded with a valid.txt, so the test knows the split) and its wall time."""
    data = io.BytesIO(zip_folder(camvid, ("images", "labels", "codes.txt")))
    with zipfile.ZipFile(data, "a") as zf:
        zf.writestr("camvid_tiny/valid.txt", "\n".join(valid_names) + "\n")
    api = Api(server.target)
    ds = api.datasets.UploadDataset(
        upload_requests(data.getvalue(), "camvid", layout=datasets_pb2.IMAGE_MASKS), timeout=120
    )
    assert len(ds.summary.classes) == 32 and ds.summary.train_items == 80 and ds.summary.valid_items == 20
    start = time.monotonic()
    job = api.training.CreateFineTuneJob(
        training_pb2.CreateFineTuneJobRequest(
            task=training_pb2.SEGMENTATION,
            model_name="camvid",
            arch="resnet18",
            dataset_id=ds.id,
            base=training_pb2.BaseModel(random_init=True),
            hyperparameters=HYPER,
        ),
        timeout=30,
    )
    yield wait_for(api, job.id, TERMINAL, timeout=1200), time.monotonic() - start
    api.close()


def _segment(api: Api, images: list[bytes], probabilities: bool = False) -> inference_pb2.SegmentResponse:
    return api.inference.Segment(
        inference_pb2.SegmentRequest(
            model=common_pb2.ModelRef(name="camvid"),
            include_probabilities=probabilities,
            images=[common_pb2.Image(data=d, name=str(i)) for i, d in enumerate(images)],
        ),
        timeout=300,
    )


def test_segment_validation_images_beats_majority_baseline(
    api: Api, trained: tuple[training_pb2.Job, float], camvid: Path, valid_names: list[str], codes: list[str]
) -> None:
    job, seconds = trained
    assert job.state == training_pb2.SUCCEEDED, job.error
    train_names = sorted({p.name for p in (camvid / "images").glob("*.png")} - set(valid_names))
    train_counts = sum(np.bincount(_mask(camvid, n).ravel(), minlength=32) for n in train_names)
    train_counts[VOID] = 0
    majority = int(train_counts.argmax())

    resp = _segment(api, [(camvid / "images" / n).read_bytes() for n in valid_names])
    confusion = np.zeros((32, 32), dtype=np.int64)
    for name, seg in zip(valid_names, resp.results, strict=True):
        truth, pred = _mask(camvid, name), np.array(Image.open(io.BytesIO(seg.mask_png))).astype(np.int64)
        keep = truth != VOID
        confusion += np.bincount(truth[keep] * 32 + pred[keep], minlength=32 * 32).reshape(32, 32)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    present[VOID] = False
    accuracy = tp.sum() / confusion.sum()
    mean_iou = (tp[present] / union[present]).mean()
    baseline = confusion[majority].sum() / confusion.sum()
    # predicting the majority class everywhere: its IoU is its pixel share, every other class's is 0
    baseline_iou = baseline / (confusion.sum(1) > 0).sum()
    model = api.models.GetModel(models_pb2.GetModelRequest(ref=common_pb2.ModelRef(name="camvid")))
    report = (
        f"camvid_tiny, 20 validation images through gRPC Segment ({job.result.epochs_trained} epochs: 3 at "
        f"64x48 + 1 at 128x96, random ResNet-18 encoder, {seconds:.0f} s wall incl. queueing): pixel accuracy "
        f"(void excluded) {accuracy:.4f} vs majority-class ({codes[majority]}) baseline {baseline:.4f}; "
        f"mean IoU {mean_iou:.4f} vs baseline {baseline_iou:.4f}; engine's own valid metrics: accuracy "
        f"{model.metrics['accuracy']:.4f}, mean IoU {model.metrics['mean_iou']:.4f}, "
        f"Dice {model.metrics['dice']:.4f}"
    )
    print("\n" + report)
    assert accuracy >= baseline + 0.15, report
    assert mean_iou > baseline_iou, report
    assert abs(model.metrics["accuracy"] - accuracy) < 0.02, report  # the engine scored the same split
    assert model.task == training_pb2.SEGMENTATION and list(model.classes) == codes


def test_mask_has_input_size_and_codes(
    api: Api, trained: tuple[training_pb2.Job, float], camvid: Path, codes: list[str]
) -> None:
    """Any input size comes back at that size (a JPEG 200x150, an odd 77x51 PNG, the native 128x96)."""
    source = Image.open(sorted((camvid / "images").glob("*.png"))[0])
    inputs = []
    for size, fmt in (((200, 150), "JPEG"), ((77, 51), "PNG"), ((128, 96), "PNG")):
        buf = io.BytesIO()
        source.resize(size).save(buf, fmt)
        inputs.append((size, buf.getvalue()))
    resp = _segment(api, [data for _, data in inputs], probabilities=True)
    assert list(resp.classes) == codes and resp.model.version == 1
    for (size, _), seg in zip(inputs, resp.results, strict=True):
        mask = Image.open(io.BytesIO(seg.mask_png))
        assert mask.size == size == (seg.width, seg.height) and mask.mode == "P"
        assert np.array(mask).max() < len(codes)
        assert [s.label for s in seg.shares] == codes
        assert sum(s.share for s in seg.shares) == pytest.approx(1.0)
        counts = np.bincount(np.array(mask).ravel(), minlength=len(codes)) / (size[0] * size[1])
        assert [s.share for s in seg.shares] == pytest.approx(counts.tolist())
        assert [p.label for p in seg.probabilities] == codes
        probs = np.stack([np.array(Image.open(io.BytesIO(p.png))) for p in seg.probabilities]).astype(int)
        assert probs.shape == (len(codes), size[1], size[0])
        assert abs(probs.sum(0) - 255).max() <= len(codes) // 2 + 1  # each map rounded to 1/255


def test_explain_a_class_region(api: Api, trained: tuple[training_pb2.Job, float], camvid: Path) -> None:
    """Grad-CAM of a segmentation model: a class's predicted region by name, or the largest class by default;
    the overlay spans the whole input, which the U-Net sees whole."""
    sources = sorted((camvid / "images").glob("*.png"))[:2]
    images = [common_pb2.Image(data=p.read_bytes(), name=p.name) for p in sources]
    named = api.inference.Explain(inference_pb2.ExplainRequest(model=common_pb2.ModelRef(name="camvid"),
                                                                images=images, target="Road"), timeout=300)
    default = api.inference.Explain(inference_pb2.ExplainRequest(model=common_pb2.ModelRef(name="camvid"),
                                                                  images=images[:1]), timeout=300)
    assert [h.target for h in named.results] == ["Road", "Road"] and default.results[0].target
    for heatmap in [*named.results, *default.results]:
        assert len(heatmap.grid) == heatmap.grid_width * heatmap.grid_height > 0
        assert 0.0 <= min(heatmap.grid) <= max(heatmap.grid) <= 1.0
        with Image.open(io.BytesIO(heatmap.overlay_png)) as overlay:
            assert overlay.size == (128, 96)
    with pytest.raises(grpc.RpcError) as refused:
        api.inference.Explain(inference_pb2.ExplainRequest(model=common_pb2.ModelRef(name="camvid"), images=images,
                                                           target="Unicorn"), timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_segmentation_refusals(
    api: Api, trained: tuple[training_pb2.Job, float], camvid: Path, server: ServerProcess
) -> None:
    good = sorted((camvid / "images").glob("*.png"))[0].read_bytes()
    folders = api.datasets.RegisterDataset(
        datasets_pb2.RegisterDatasetRequest(
            name="digits", layout=datasets_pb2.IMAGE_FOLDERS, uri=str(camvid.parent / "mnist_tiny")
        )
    )
    masks = api.datasets.RegisterDataset(
        datasets_pb2.RegisterDatasetRequest(name="camvid", layout=datasets_pb2.IMAGE_MASKS, uri=str(camvid))
    )
    assert masks.summary.train_items == 100 and masks.summary.valid_items == 0

    def job(task: int, ds: str, **hyper: str) -> training_pb2.CreateFineTuneJobRequest:
        return training_pb2.CreateFineTuneJobRequest(
            task=task,
            model_name="x",
            dataset_id=ds,
            base=training_pb2.BaseModel(random_init=True),
            hyperparameters=training_pb2.Hyperparameters(**hyper),
        )

    no_mask = io.BytesIO()
    with zipfile.ZipFile(no_mask, "w") as zf:
        zf.writestr("d/codes.txt", "a\nb\n")
        for i in range(3):
            zf.writestr(f"d/images/{i}.png", good)
            if i:
                zf.writestr(f"d/labels/{i}_P.png", good)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    cases = {
        "Classify on a segmentation model": (
            invalid,
            lambda: api.inference.Classify(
                inference_pb2.ClassifyRequest(
                    model=common_pb2.ModelRef(name="camvid"), images=[common_pb2.Image(data=good)]
                )
            ),
        ),
        "undecodable image": (invalid, lambda: _segment(api, [good, b"\x89PNG\r\n\x1a\nnot really"])),
        "no images": (invalid, lambda: _segment(api, [])),
        "unknown model": (
            grpc.StatusCode.NOT_FOUND,
            lambda: api.inference.Segment(
                inference_pb2.SegmentRequest(
                    model=common_pb2.ModelRef(name="nope"), images=[common_pb2.Image(data=good)]
                )
            ),
        ),
        "segmentation of image folders": (
            invalid,
            lambda: api.training.CreateFineTuneJob(job(training_pb2.SEGMENTATION, folders.id)),
        ),
        "classification of image masks": (
            invalid,
            lambda: api.training.CreateFineTuneJob(job(training_pb2.IMAGE_CLASSIFICATION, masks.id)),
        ),
        "void_code not in codes.txt": (
            invalid,
            lambda: api.training.CreateFineTuneJob(job(training_pb2.SEGMENTATION, masks.id, void_code="void")),
        ),
        "image without a mask": (
            invalid,
            lambda: api.datasets.UploadDataset(upload_requests(no_mask.getvalue(), layout=datasets_pb2.IMAGE_MASKS)),
        ),
    }
    for what, (code, call) in cases.items():
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code, f"{what}: {err.value.code()} {err.value.details()}"
        print(f"{what}: {err.value.code().name}: {err.value.details()}")
    assert rpc_code(_segment, api, [good]) == grpc.StatusCode.OK
    assert server.healthy()
