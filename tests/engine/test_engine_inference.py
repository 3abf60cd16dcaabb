from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worker.engine import EngineError, ImageClassifier, InvalidImage

ROOT = Path(__file__).resolve().parents[2]


def valid_images(dataset: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((dataset / "valid").rglob("*")) if p.is_file()]


def test_classify_returns_sorted_top_k_clipped_to_the_classes(tiny_model: Path, tiny_dataset: Path) -> None:
    model = ImageClassifier.load(tiny_model)
    assert model.classes == ["horizontal", "vertical"] and model.card["arch"] == "resnet18"
    images = valid_images(tiny_dataset)
    results = model.classify(images, top_k=5)
    assert len(results) == len(images)
    for ranked in results:
        assert [label for label, _ in ranked] in (["horizontal", "vertical"], ["vertical", "horizontal"])
        assert ranked[0][1] >= ranked[1][1] and sum(p for _, p in ranked) == pytest.approx(1.0, abs=1e-6)
    assert all(len(ranked) == 1 for ranked in model.classify(images[:3], top_k=1))
    with pytest.raises(ValueError, match="top_k"):
        model.classify(images[:1], top_k=0)


def test_probabilities_are_float32_and_independent_of_batching(tiny_model: Path, tiny_dataset: Path) -> None:
    model = ImageClassifier.load(tiny_model, device="cpu")
    images = valid_images(tiny_dataset)
    probs = model.predict_proba(images)
    assert probs.dtype == torch.float32 and probs.shape == (len(images), 2)
    assert torch.equal(probs, model.predict_proba(images))  # the same batch: the same bits
    # Another batch runs other kernels on CPU: the same answer, to float32 rounding.
    torch.testing.assert_close(probs[3:5], model.predict_proba(images[3:5]), rtol=0, atol=1e-6)
    assert model.predict_proba([]).shape == (0, 2)


def test_probabilities_are_bit_identical_in_another_process(tiny_model: Path, tiny_dataset: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from worker.engine import ImageClassifier\n"
        "files = sorted(p for p in (Path(sys.argv[2]) / 'valid').rglob('*') if p.is_file())\n"
        "probs = ImageClassifier.load(sys.argv[1], device='cpu').predict_proba([p.read_bytes() for p in files])\n"
        "print(probs.numpy().tobytes().hex())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tiny_model), str(tiny_dataset)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout.strip()
    here = ImageClassifier.load(tiny_model, device="cpu").predict_proba(valid_images(tiny_dataset))
    assert out == here.numpy().tobytes().hex()


def test_undecodable_image_names_its_index(tiny_model: Path, tiny_dataset: Path) -> None:
    model = ImageClassifier.load(tiny_model)
    good = valid_images(tiny_dataset)[0]
    with pytest.raises(InvalidImage) as info:
        model.classify([good, good, b"\x89PNG garbage"])
    assert info.value.index == 2 and "cannot decode" in info.value.reason
    with pytest.raises(InvalidImage) as info:
        model.predict_proba([b""])
    assert info.value.index == 0 and "empty" in info.value.reason


def test_loading_something_that_is_not_a_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot read model card"):
        ImageClassifier.load(tmp_path)
