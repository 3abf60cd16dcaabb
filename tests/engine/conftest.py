"""Engine fixtures: a tiny synthetic image-folders data set, one small model fine-tuned on it, and made-up
two-class texts."""

from __future__ import annotations

import csv
import random
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from worker.engine import FineTuneConfig, fine_tune

from .synthetic_images import TINY, write_class

RESNET18_FILE = "resnet18-f37072fd.pth"  # basename of ResNet18_Weights.IMAGENET1K_V1.url


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/{horizontal,vertical} + valid/{horizontal,vertical}, plus a test/ folder and a stray file."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    for split, count, seed in (("train", 12, 0), ("valid", 4, 1000)):
        write_class(root / split / "horizontal", False, count, seed)
        write_class(root / split / "vertical", True, count, seed + 500)
    write_class(root / "test" / "unlabelled", True, 2, 9000)
    (root / "README.txt").write_text("not an image")
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_model")
    fine_tune(FineTuneConfig(**TINY), tiny_dataset, out)
    return out


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads fail at once, as on a machine without internet."""
    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"no network for {url}")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def seeded_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      offline: None) -> dict[str, torch.Tensor]:
    """A TORCH_HOME pre-seeded, as an offline machine would be, with a random resnet18 standing in for the
    ImageNet checkpoint; returns the state dict that was saved."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(reference, checkpoints / RESNET18_FILE)
    return reference


@pytest.fixture(scope="session")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 made-up two-class texts, 12 of them held out."""
    rng = random.Random(0)
    words = {"good": ["great", "fine", "lovely", "superb"], "bad": ["awful", "dull", "poor", "boring"]}
    filler = ["the", "film", "was", "a", "plot", "and", "actors", "really", "quite", "story"]
    root = tmp_path_factory.mktemp("reviews")
    with open(root / "texts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "text", "is_valid"])
        for i in range(60):
            label = "good" if i % 2 else "bad"
            text = " ".join(rng.choice(words[label] if rng.random() < 0.3 else filler) for _ in range(25))
            writer.writerow([label, text.capitalize() + ".", i >= 48])
    return root
