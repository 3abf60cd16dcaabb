"""One real server process (local Ray) per test session, shared by the end-to-end modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from e2e.helpers import Api, upload_requests, zip_folder
from fineserve.v1 import datasets_pb2
from harness.launcher import ServerProcess


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME holding resnet18's ImageNet file name (random weights: ImageNet's can't reach here)."""
    home = tmp_path_factory.mktemp("torch_home")
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    ckpt = home / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    ckpt.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), ckpt)
    return home


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, torch_home: Path) -> Iterator[ServerProcess]:
    """Tests may restart it (same data dir); read .target afresh after a restart."""
    os.environ["TORCH_HOME"] = str(torch_home)  # inherited by the server and its local Ray workers
    # A short job lease, so that a test can find a hung worker in seconds (test_training_recipe); metrics for
    # test_serving_scale.
    srv = ServerProcess(tmp_path_factory.mktemp("srv") / "data", "--allowed-root", str(shared_data),
                        "--job-lease-seconds", "20", "--metrics-port", "0").start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    a = Api(server.target)
    yield a
    a.close()


@pytest.fixture(scope="session")
def mnist(shared_data: Path) -> Path:
    return shared_data / "mnist_tiny"


@pytest.fixture(scope="session")
def mnist_dataset(server: ServerProcess, mnist: Path) -> datasets_pb2.Dataset:
    api = Api(server.target)
    try:
        return api.datasets.UploadDataset(upload_requests(zip_folder(mnist, ("train", "valid")), "mnist_tiny"),
                                          timeout=120)
    finally:
        api.close()
