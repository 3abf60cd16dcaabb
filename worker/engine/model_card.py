"""A model on disk: model.safetensors (weights, never code) + card.json (all that is needed to rebuild it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from fineserve_common.card import WEIGHTS_FILE, ModelCardError, read_card, write_atomically, write_card

from .errors import EngineError
from .precision import resolve_device


def save_model(out_dir: str | Path, state_dict: dict[str, torch.Tensor], card: dict[str, Any]) -> None:
    """Weights first, card last: a directory with a card.json is a complete model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    write_atomically(out / WEIGHTS_FILE, lambda tmp: safetensors.torch.save_file(tensors, tmp))
    write_card(out, card)


def read_model_card(model_dir: str | Path, task: str | None = None) -> dict[str, Any]:
    """The card as an engine caller expects it: EngineError when unreadable or, given a task, of another task
    (a loader must not half-build the wrong model)."""
    try:
        card = read_card(model_dir)
    except ModelCardError as e:
        raise EngineError(e.message) from e
    if task is not None and card.get("task") != task:
        raise EngineError(f"{model_dir} holds a {card.get('task')!r} model, not {task}")
    return card


def read_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    path = Path(model_dir) / WEIGHTS_FILE
    try:
        return safetensors.torch.load_file(path)
    except Exception as e:  # safetensors reports a corrupt header as one of several exception types
        raise EngineError(f"cannot read model weights {path}: {e}") from e


def load_weights_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], model_dir: str | Path) -> None:
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise EngineError(f"weights in {model_dir} do not match its card: {e}") from e


def load_model_dir(model_dir: str | Path, task: str, build: Callable[[dict[str, Any]], torch.nn.Module],
                   device: str) -> tuple[torch.nn.Module, dict[str, Any], torch.device]:
    """(model in eval mode on the device, card, device) for a model directory of `task`; build(card) makes the
    empty model. EngineError for another task's model or weights that do not fit the card."""
    card = read_model_card(model_dir, task)
    model = build(card)
    load_weights_into(model, read_weights(model_dir), model_dir)
    torch_device = resolve_device(device)
    # Served weights never train: Grad-CAM then builds no autograd graph below the layer it hooks.
    model.requires_grad_(False)
    return model.eval().to(torch_device), card, torch_device
