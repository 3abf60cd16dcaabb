"""Loading pretrained bodies. Every failure is WeightsUnavailable: a job asked for pretrained weights must
never quietly train from random ones."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import safetensors.torch
import torch
import torchvision
from torch import nn

from fineserve_common.bounds import check_choice
from fineserve_common.configs import BaseWeights
from fineserve_common.configs.vision import IMAGE_TASKS

from ..errors import EngineError, WeightsUnavailable
from ..model_card import read_model_card, read_weights
from .transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class LoadedBase:
    """What the weights imply beyond the tensors: the input normalisation they were trained with."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


def _body_state(state: Mapping[str, object], where: str) -> dict[str, torch.Tensor]:
    """Take fineserve keys (body.*; a classifier's head.* or a U-Net's decoder.* ignored) or torchvision ones
    (fc.* ignored); key as torchvision."""
    if any(k.startswith("body.") for k in state):
        body = {k.removeprefix("body."): v for k, v in state.items() if k.startswith("body.")}
    else:
        body = {k: v for k, v in state.items() if not k.startswith("fc.")}
    bad = [k for k, v in body.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsUnavailable(f"{where}: entries that are not tensors: {', '.join(bad[:5])}")
    return body  # type: ignore[return-value]


def _sample(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def _load_into(body: nn.Module, state: Mapping[str, object], where: str) -> None:
    """Strict key and shape check first, so the error names what differs rather than failing deep in torch."""
    source = _body_state(state, where)
    expected = body.state_dict()
    # Old torchvision checkpoints predate BatchNorm's num_batches_tracked; load_state_dict fills it in.
    missing = [k for k in expected if k not in source and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in source if k not in expected]
    mismatched = [f"{k} {tuple(source[k].shape)} vs {tuple(v.shape)}"
                  for k, v in expected.items() if k in source and source[k].shape != v.shape]
    problems = [f"{label}: {_sample(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                if keys]
    if problems:
        raise WeightsUnavailable(f"{where} does not fit this body: " + "; ".join(problems))
    body.load_state_dict(source)


def torchvision_weights(base: BaseWeights, arch: str) -> torchvision.models.WeightsEnum:
    """The weight enum member base.name of arch. Checked here, not in the config, which stays free of
    torchvision: an unknown name is a bad request (InvalidArgument), refused before any data is read."""
    enum = torchvision.models.get_model_weights(arch)
    return enum[check_choice("base.name", base.name, tuple(enum.__members__))]


def _from_torchvision(base: BaseWeights, arch: str, body: nn.Module) -> LoadedBase:
    weights = torchvision_weights(base, arch)
    label = f"{type(weights).__name__}.{weights.name}"
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    present = cached.is_file()
    try:
        state = weights.get_state_dict(progress=False, check_hash=False, weights_only=True)
    except Exception as e:  # network, file system and unpickling errors all mean the same thing here
        if present:
            raise WeightsUnavailable(f"cannot read pretrained weights {label} from {cached}: {e}") from e
        raise WeightsUnavailable(
            f"pretrained weights {label} are not available: {cached} is missing (pre-seed it or set "
            f"TORCH_HOME) and downloading {weights.url} failed: {type(e).__name__}: {e}") from e
    _load_into(body, state, f"pretrained weights {label} ({cached})")
    transform = weights.transforms()
    mean = tuple(getattr(transform, "mean", IMAGENET_MEAN))
    std = tuple(getattr(transform, "std", IMAGENET_STD))
    return LoadedBase(mean, std, f"torchvision {label} from {cached}")


def _from_file(base: BaseWeights, body: nn.Module) -> LoadedBase:
    path = Path(base.path)
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt"):
        raise WeightsUnavailable(f"weights file {path}: expected a .safetensors, .pth or .pt file")
    try:
        if suffix == ".safetensors":
            state = safetensors.torch.load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # missing, unreadable, corrupt or not a plain state dict
        raise WeightsUnavailable(f"cannot read weights file {path}: {e}") from e
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"weights file {path} does not hold a state dict")
    _load_into(body, state, f"weights file {path}")
    return LoadedBase(IMAGENET_MEAN, IMAGENET_STD, f"weights file {path}")


def _from_store(base: BaseWeights, arch: str, body: nn.Module) -> LoadedBase:
    model_dir = Path(base.path)
    try:
        card = read_model_card(model_dir)
        state = read_weights(model_dir)
    except EngineError as e:
        raise WeightsUnavailable(f"cannot use stored model {model_dir} as base: {e}") from e
    if card.get("task") not in IMAGE_TASKS:
        raise WeightsUnavailable(f"stored model {model_dir} is a {card.get('task')!r} model: only "
                                 f"{', '.join(IMAGE_TASKS)} models have a ResNet body to start from")
    if card.get("arch") != arch:
        raise WeightsUnavailable(
            f"stored model {model_dir} is a {card.get('arch')} but this job fine-tunes a {arch}: "
            f"set arch to {card.get('arch')!r} or pick another base")
    _load_into(body, state, f"stored model {model_dir}")
    norm = card["normalization"]
    return LoadedBase(tuple(norm["mean"]), tuple(norm["std"]), f"stored model {model_dir}")


def load_base_weights(base: BaseWeights, arch: str, body: nn.Module) -> LoadedBase:
    """Copy the requested pretrained weights into body (torchvision-keyed) and say how to normalise inputs."""
    if base.kind == "torchvision":
        return _from_torchvision(base, arch, body)
    if base.kind == "file":
        return _from_file(base, body)
    if base.kind == "store":
        return _from_store(base, arch, body)
    return LoadedBase(IMAGENET_MEAN, IMAGENET_STD, "random initialisation (base kind 'none')")
