"""A model on disk: model.safetensors (weights, never code) + card.json (all that is needed to rebuild it)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from .errors import EngineError
from .precision import resolve_device

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def _write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Write to a temporary name beside path then rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_json(data: dict[str, Any], tmp: str) -> None:
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def save_model(out_dir: str | Path, state_dict: dict[str, torch.Tensor], card: dict[str, Any]) -> None:
    """Weights first, card last: a directory with a card.json is a complete model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    _write_atomically(out / WEIGHTS_FILE, lambda tmp: safetensors.torch.save_file(tensors, tmp))
    _write_atomically(out / CARD_FILE, lambda tmp: _write_json(card, tmp))


def read_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EngineError(f"cannot read model card {path}: {e}") from e
    if not isinstance(card, dict) or card.get("format_version") != FORMAT_VERSION:
        raise EngineError(f"{path} is not a version {FORMAT_VERSION} fineserve model card")
    return card


def read_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    path = Path(model_dir) / WEIGHTS_FILE
    try:
        return safetensors.torch.load_file(path)
    except Exception as e:  # safetensors reports a corrupt header as one of several exception types
        raise EngineError(f"cannot read model weights {path}: {e}") from e


def read_card_of_task(model_dir: str | Path, task: str) -> dict[str, Any]:
    """The card, refusing a model of another task (a loader must not half-build the wrong model)."""
    card = read_card(model_dir)
    if card.get("task") != task:
        raise EngineError(f"{model_dir} holds a {card.get('task')!r} model, not {task}")
    return card


def load_weights_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], model_dir: str | Path) -> None:
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise EngineError(f"weights in {model_dir} do not match its card: {e}") from e


def load_model_dir(model_dir: str | Path, task: str, build: Callable[[dict[str, Any]], torch.nn.Module],
                   device: str) -> tuple[torch.nn.Module, dict[str, Any], torch.device]:
    """(model in eval mode on the device, card, device) for a model directory of `task`; build(card) makes the
    empty model. EngineError for another task's model or weights that do not fit the card."""
    card = read_card_of_task(model_dir, task)
    model = build(card)
    load_weights_into(model, read_weights(model_dir), model_dir)
    torch_device = resolve_device(device)
    # Served weights never train: Grad-CAM then builds no autograd graph below the layer it hooks.
    model.requires_grad_(False)
    return model.eval().to(torch_device), card, torch_device
