"""prepare_for_serving: eval weights, the serving precision, a warm-up pass; fp32 answers as the plain engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worker.engine import EngineError, ImageClassifier, load_served_model, prepare_for_serving
from worker.engine.precision import cpu_supports_bf16
from worker.engine.vision.forward import padded_size, warm_up


def _images(dataset: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((dataset / "valid").rglob("*")) if p.is_file()]


def test_fp32_serving_answers_as_the_plain_engine(tiny_model: Path, tiny_dataset: Path) -> None:
    images = _images(tiny_dataset)
    plain = ImageClassifier.load(tiny_model, device="cpu").predict_proba(images)
    served = prepare_for_serving(load_served_model(tiny_model, device="cpu"), "fp32")
    assert not served.model.training and served.precision == "fp32"
    assert not served.channels_last  # CPU: oneDNN picks its layout; only GPUs get channels-last weights
    assert torch.equal(served.predict_proba(images), plain)


def test_bf16_serving_stays_close_to_fp32(tiny_model: Path, tiny_dataset: Path) -> None:
    images = _images(tiny_dataset)
    fp32 = ImageClassifier.load(tiny_model, device="cpu").predict_proba(images)
    served = prepare_for_serving(load_served_model(tiny_model, device="cpu"), "bf16")
    probs = served.predict_proba(images)
    gap = (probs - fp32).abs().max().item()
    print(f"\nbf16 vs fp32 serving, largest probability gap: {gap:.4f} (native bf16: {cpu_supports_bf16()})")
    assert served.precision == "bf16" and probs.dtype == torch.float32
    assert gap < 0.05 and torch.equal(probs.argmax(1), fp32.argmax(1))


def test_a_precision_the_device_cannot_run_is_refused(tiny_model: Path) -> None:
    with pytest.raises(EngineError, match="fp16 needs a GPU"):
        prepare_for_serving(load_served_model(tiny_model, device="cpu"), "fp16")


def test_cuda_batches_are_padded_to_powers_of_two_and_padding_changes_no_row(tiny_model: Path,
                                                                             tiny_dataset: Path) -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [padded_size(n, cuda) for n in (0, 1, 2, 3, 5, 16, 17, 32)] == [0, 1, 2, 4, 8, 16, 32, 32]
    assert [padded_size(n, cpu) for n in (1, 3, 17)] == [1, 3, 17]
    served = prepare_for_serving(load_served_model(tiny_model, device="cpu"), "fp32")
    x = served.preprocess(_images(tiny_dataset)[:3])
    with torch.inference_mode():  # eval mode: the zero rows a CUDA pass adds leave the real rows as they were
        alone, padded = served.model(x), served.model(torch.cat([x, torch.zeros_like(x[:1])]))[:3]
    torch.testing.assert_close(padded, alone, rtol=0, atol=1e-5)


def test_warm_up_runs_every_batch_size_a_cuda_pass_takes_and_one_on_cpu() -> None:
    def sizes(max_batch: int, device: str) -> list[int]:
        seen: list[tuple[int, ...]] = []
        warm_up(lambda x: seen.append(tuple(x.shape)), (3, 8, 8), max_batch, torch.device(device))
        assert all(shape[1:] == (3, 8, 8) for shape in seen)
        return [shape[0] for shape in seen]

    assert sizes(32, "cuda") == [1, 2, 4, 8, 16, 32]
    assert sizes(20, "cuda") == [1, 2, 4, 8, 16, 32]  # 17-20 images run padded to 32
    assert sizes(1, "cuda") == [1]
    assert sizes(32, "cpu") == [1]  # no padding on CPU: a cold shape costs little there
