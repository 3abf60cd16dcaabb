"""Grad-CAM against an independent computation, and explain() on a served model."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import torch
from PIL import Image

from worker.engine import ImageClassifier, class_score, explain, grad_cam
from worker.engine.vision.grad_cam import region_score
from worker.engine.vision.heatmaps import heat_peak, overlay_png, seen_box
from worker.engine.vision.resnet import ResNetClassifier

from .synthetic_images import image_bytes, stripes


def reference_cam(model: ResNetClassifier, x: torch.Tensor, index: int) -> torch.Tensor:
    """Grad-CAM of one image straight from autograd on the body's output (no hooks, no batching)."""
    features = model.body(x[None]).detach().requires_grad_(True)
    logits = model.head(features)[0]
    c = index if index >= 0 else int(logits.argmax())
    (grads,) = torch.autograd.grad(logits[c], features)
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1))[0]
    return cam / cam.max() if cam.max() > 0 else cam


def test_batched_grad_cam_equals_per_image_autograd_reference() -> None:
    torch.manual_seed(0)
    model = ResNetClassifier("resnet18", 5).eval()
    x = torch.randn(6, 3, 96, 96)
    indices = torch.tensor([0, 4, -1, 2, -1, 1])
    maps, output = grad_cam(model, model.body.layer4, x, class_score(indices))
    assert maps.shape == (6, 3, 3) and output.shape == (6, 5)
    with torch.no_grad():
        assert torch.allclose(output, model(x), atol=1e-5)
    positive = 0
    for i in range(6):
        expected = reference_cam(model, x[i], int(indices[i]))
        positive += bool(expected.max() > 0)
        assert torch.allclose(maps[i], expected, atol=1e-5), (i, maps[i], expected)
    assert positive >= 3, "maps without positive evidence (all 0) would not test much"
    assert not any(p.grad is not None for p in model.parameters()), "Grad-CAM must not touch parameter grads"
    assert not model.body.layer4._forward_hooks


def test_other_threads_forward_passes_are_not_hooked() -> None:
    """A served model is shared: Classify's forward pass in another thread must not meet Grad-CAM's hook."""
    torch.manual_seed(0)
    model = ResNetClassifier("resnet18", 3).eval()
    x = torch.randn(2, 3, 64, 64)
    seen: list[bool] = []
    entered = threading.Event()
    release = threading.Event()

    def target(output: torch.Tensor) -> torch.Tensor:
        entered.set()
        release.wait(10)
        return output[:, 0]

    worker = threading.Thread(target=lambda: grad_cam(model, model.body.layer4, x, target))
    worker.start()
    entered.wait(10)
    with torch.inference_mode():
        seen.append(model.body(x).requires_grad)
    release.set()
    worker.join()
    assert seen == [False]


def test_explain_serves_maps_and_overlays_at_the_input_size(tiny_model: Path) -> None:
    model = ImageClassifier.load(tiny_model, device="cpu")
    wide = stripes(True, 1, size=24).resize((40, 24))
    images = [image_bytes(stripes(True, 2)), image_bytes(wide.convert("RGB"), "JPEG")]
    top = explain(model, images)
    named = explain(model, images, "horizontal")
    assert [e.target for e in top] == [model.classes[i] for i in model.predict_proba(images).argmax(dim=1)]
    assert [e.target for e in named] == ["horizontal", "horizontal"]
    for e, size in zip(top, [(24, 24), (40, 24)], strict=True):
        assert e.grid.shape == (4, 4) and 0.0 <= float(e.grid.min()) <= float(e.grid.max()) <= 1.0  # layer2
        with Image.open(io.BytesIO(e.overlay_png)) as overlay:
            assert overlay.format == "PNG" and overlay.size == size


def test_overlay_colours_the_seen_square_where_the_map_is_hot() -> None:
    image = Image.new("RGB", (60, 40), (128, 128, 128))
    grid = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert seen_box(60, 40) == (10, 0, 50, 40)
    with Image.open(io.BytesIO(overlay_png(image, grid))) as overlay:
        rgb = overlay.convert("RGB")
        assert rgb.size == (60, 40)
        assert rgb.getpixel((2, 20)) == (128, 128, 128)  # outside what the model saw: untouched
        hot, cold = rgb.getpixel((45, 5)), rgb.getpixel((12, 35))
        assert hot[0] > hot[2] and cold[2] > cold[0]  # yellow where the map is 1, purple where it is 0
    x, y = heat_peak(grid, 60, 40)
    assert x >= 30 and y < 20  # in the hot quarter of the seen square


def test_region_score_sums_a_class_over_its_predicted_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    predicted = logits.argmax(dim=1)
    scores = region_score(torch.tensor([1, -1]))(logits)
    assert torch.allclose(scores[0], logits[0, 1][predicted[0] == 1].sum())
    largest = int(torch.bincount(predicted[1].flatten(), minlength=3).argmax())
    assert torch.allclose(scores[1], logits[1, largest][predicted[1] == largest].sum())
    absent = torch.zeros(1, 3, 2, 2)
    absent[:, 0] = 1.0  # every pixel is class 0: class 2's region is empty
    assert region_score(torch.tensor([2]))(absent).item() == 0.0
