"""Fine-tuning configuration: JSON round-trippable and validated up front, so bad requests fail early."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torchvision

ARCHS = ("resnet18", "resnet34", "resnet50")
BASE_KINDS = ("torchvision", "file", "store", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _fail(name: str, problem: str, value: Any) -> None:
    raise ValueError(f"invalid {name}: {problem} (got {value!r})")


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, "must be an integer", value)
    if value < lo or (hi is not None and value > hi):
        _fail(name, f"must be >= {lo}" + (f" and <= {hi}" if hi is not None else ""), value)


def _check_float(name: str, value: Any, lo: float, hi: float = math.inf, open_lo: bool = False,
                 open_hi: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(name, "must be a finite number", value)
    if value < lo or (open_lo and value == lo) or value > hi or (open_hi and value == hi):
        _fail(name, f"must be in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}", value)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(name, f"must be one of {', '.join(choices)}", value)


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str):
        _fail(name, "must be a string", value)


def _known_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """Reject non-mappings and unknown keys, which would otherwise be silently ignored typos."""
    if not isinstance(data, Mapping):
        _fail(where, "must be an object", data)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown field(s) in {where}: {', '.join(map(str, unknown))}")
    return dict(data)


@dataclass(frozen=True)
class BaseWeights:
    """Where the pretrained body comes from."""

    kind: str
    """"torchvision" (a weight enum through torchvision's cache), "file" (a state dict), "store" (a fineserve
    model directory) or "none" (random init)."""
    name: str = "DEFAULT"
    """For "torchvision": the weight enum member, e.g. "IMAGENET1K_V1" or "DEFAULT"."""
    path: str = ""
    """For "file": a .safetensors (preferred) or .pth/.pt state dict; for "store": a model directory."""

    def __post_init__(self) -> None:
        _check_choice("base.kind", self.kind, BASE_KINDS)
        _check_str("base.name", self.name)
        _check_str("base.path", self.path)
        if self.kind in ("file", "store") and not self.path:
            _fail("base.path", f"is required when base.kind is {self.kind!r}", self.path)

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaseWeights:
        return cls(**_known_fields(cls, data, "base"))


@dataclass(frozen=True)
class FineTuneConfig:
    """Hyperparameters of fast.ai's `fine_tune` recipe; the defaults suit a pretrained ResNet at 224 px."""

    arch: str = "resnet18"
    """Backbone: resnet18, resnet34 or resnet50."""
    base: BaseWeights = field(default_factory=lambda: BaseWeights("torchvision"))
    """Pretrained weights of the body."""
    image_size: int = 224
    """Side of the square crops fed to the network."""
    batch_size: int = 32
    """Training batch size (>= 2: the head's BatchNorm needs two samples)."""
    freeze_epochs: int = 1
    """Epochs training only the new head (and BatchNorm); skipped when base.kind is "none"."""
    epochs: int = 3
    """Epochs after unfreezing, with discriminative learning rates."""
    lr: float = 2e-3
    """Top learning rate: the head phase peaks at lr, the unfrozen phase at lr/2 for the head group."""
    lr_mult: float = 100.0
    """Ratio between the head's and the first group's rate when unfrozen: slice(lr/2/lr_mult, lr/2)."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    pct_start: float = 0.25
    """Fraction of each 1cycle spent warming the learning rate up."""
    precision: str = "auto"
    """auto (bf16 where the device supports it, else fp16 with loss scaling on GPU, else fp32), fp32, bf16 or
    fp16 (GPU only)."""
    valid_pct: float = 0.2
    """Share of images held out for validation when the data set has no valid/ (or val/) split."""
    seed: int = 0
    """Seed of initialisation, the split, shuffling and augmentation."""
    flip: bool = True
    """Random horizontal flips while training (turn off for images whose handedness matters)."""
    device: str = "auto"
    """auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    num_workers: int = 0
    """DataLoader worker processes (0 decodes in the training process)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        _check_choice("arch", self.arch, ARCHS)
        if not isinstance(self.base, BaseWeights):
            _fail("base", "must be a BaseWeights", self.base)
        if self.base.kind == "torchvision":
            names = tuple(torchvision.models.get_model_weights(self.arch).__members__)
            _check_choice("base.name", self.base.name, names)
        _check_int("image_size", self.image_size, 16, 2048)
        _check_int("batch_size", self.batch_size, 2, 4096)
        _check_int("freeze_epochs", self.freeze_epochs, 0, 1000)
        _check_int("epochs", self.epochs, 0, 1000)
        if self.base.kind == "none" and self.epochs < 1:
            _fail("epochs", "must be >= 1 when base.kind is 'none' (a random body has to train)", self.epochs)
        if self.freeze_epochs + self.epochs < 1:
            _fail("epochs", "freeze_epochs + epochs must be >= 1", self.epochs)
        _check_float("lr", self.lr, 0.0, 10.0, open_lo=True)
        _check_float("lr_mult", self.lr_mult, 1.0, 1e6)
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        _check_float("pct_start", self.pct_start, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_float("valid_pct", self.valid_pct, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if not isinstance(self.flip, bool):
            _fail("flip", "must be a boolean", self.flip)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            _fail("device", "must be auto, cpu, cuda or cuda:N", self.device)
        if self.device == "cpu" and self.precision == "fp16":
            _fail("precision", "fp16 needs a GPU (use bf16 or fp32 on cpu)", self.precision)
        _check_int("num_workers", self.num_workers, 0, 64)

    @property
    def effective_freeze_epochs(self) -> int:
        """A random body must train from the start, so "none" skips the head-only phase."""
        return 0 if self.base.kind == "none" else self.freeze_epochs

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("lr", "lr_mult", "weight_decay", "pct_start", "valid_pct"):
            data[name] = float(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FineTuneConfig:
        values = _known_fields(cls, data, "config")
        if "base" in values:
            values["base"] = BaseWeights.from_dict(values["base"])
        return cls(**values)
