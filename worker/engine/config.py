"""Fine-tuning configuration: JSON round-trippable and validated up front, so bad requests fail early."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torchvision

from .resnet_classifier import N_LAYER_GROUPS

ARCHS = ("resnet18", "resnet34", "resnet50")
BASE_KINDS = ("torchvision", "file", "store", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EARLY_STOPPING_METRICS = ("", "valid_loss", "accuracy")
IMAGE_CLASSIFICATION = "image_classification"
MULTI_LABEL = "multi_label_classification"
SEGMENTATION = "segmentation"
TASKS = (IMAGE_CLASSIFICATION, MULTI_LABEL, SEGMENTATION)
"""Every task shares the ResNet body, so any of their stored models can be another's base."""
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
class Stage:
    """One 1cycle of the training schedule: some epochs at one freeze depth and one image size."""

    epochs: int
    """Epochs of this 1cycle (>= 1)."""
    freeze_to: int
    """Layer groups [0, freeze_to) are frozen (their BatchNorm still trains); 0 trains every group."""
    image_size: int = 0
    """Input size of this stage; 0 = the config's image_size. Another size rebuilds the data loaders and the
    weights carry on (progressive resizing)."""
    lr: float = 0.0
    """Max LR of the head group; 0 = the default rule: cfg.lr when freeze_to > 0, cfg.lr / 2 when freeze_to is
    0 (fast.ai halves the rate on unfreezing), or group_lrs[-1] when group_lrs is set and freeze_to is 0."""

    def __post_init__(self) -> None:
        _check_int("stage.epochs", self.epochs, 1, 1000)
        _check_int("stage.freeze_to", self.freeze_to, 0)
        _check_int("stage.image_size", self.image_size, 0, 2048)
        if 0 < self.image_size < 16:
            _fail("stage.image_size", "must be 0 (the config's) or in [16, 2048]", self.image_size)
        _check_float("stage.lr", self.lr, 0.0, 10.0)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "lr": float(self.lr)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        return cls(**_known_fields(cls, data, "stage"))


@dataclass(frozen=True)
class FineTuneConfig:
    """Hyperparameters of fast.ai's transfer-learning recipe; the defaults suit a pretrained ResNet at 224 px."""

    task: str = IMAGE_CLASSIFICATION
    """image_classification (one class per image, image-folders layout: ResNet + head, softmax + cross-entropy),
    multi_label_classification (any number of labels per image, labels-CSV layout: sigmoid + binary cross-entropy
    per label) or segmentation (image masks, U-Net, pixel-wise cross-entropy)."""
    arch: str = "resnet18"
    """Backbone: resnet18, resnet34 or resnet50 (the U-Net's encoder for segmentation)."""
    base: BaseWeights = field(default_factory=lambda: BaseWeights("torchvision"))
    """Pretrained weights of the body."""
    image_size: int = 224
    """Side of the square crops fed to the network (stages may override it); for segmentation the longer side,
    the other one following the data set's aspect ratio."""
    batch_size: int = 32
    """Training batch size (>= 2: the head's BatchNorm needs two samples)."""
    freeze_epochs: int = 1
    """Epochs training only the new head (and BatchNorm); skipped when base.kind is "none". Unused with stages."""
    epochs: int = 3
    """Epochs after unfreezing, with discriminative learning rates. Unused with stages."""
    lr: float = 2e-3
    """Top learning rate: stages with frozen groups peak at lr, unfrozen ones at lr/2 for the head group (unless
    a stage sets its own). With auto_lr it is replaced by the LR range test's suggestion."""
    lr_mult: float = 100.0
    """Ratio between the head's and the first group's rate: group i peaks at a geometric spread from
    stage_lr/lr_mult (first group) to stage_lr (head), fast.ai's slice(stage_lr/lr_mult, stage_lr)."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    pct_start: float = 0.25
    """Fraction of each 1cycle spent warming the learning rate up."""
    div_factor: float = 25.0
    """Each 1cycle starts at max_lr / div_factor (fast.ai and torch: 25)."""
    final_div_factor: float = 1e5
    """Each 1cycle ends at max_lr / (div_factor * final_div_factor); fast.ai's 1e5 (torch defaults to 1e4)."""
    moms_max: float = 0.95
    """AdamW's beta1 at the start and end of each 1cycle; it falls to moms_min while the LR warms up."""
    moms_min: float = 0.85
    """AdamW's beta1 at the LR peak: less momentum while the LR is high (fast.ai's moms=(0.95, 0.85, 0.95))."""
    group_lrs: tuple[float, ...] = ()
    """Explicit max LR per layer group (earliest first, one per group: 3 for ResNets) for stages with
    freeze_to 0, replacing the lr/lr_mult spread there; () = the spread."""
    stages: tuple[Stage, ...] = ()
    """The schedule, each stage one 1cycle; () = fast.ai's fine_tune: freeze_epochs with only the head group
    trainable, then epochs with everything unfrozen."""
    label_smoothing: float = 0.0
    """Label smoothing of the training cross-entropy (0 = off; fast.ai's usual value is 0.1)."""
    mixup_alpha: float = 0.0
    """Mixup: pairs of training images blended with a Beta(alpha, alpha) weight per batch (0 = off; 0.4 is
    typical)."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value (0 = off)."""
    early_stopping_metric: str = ""
    """"valid_loss" (lower is better) or "accuracy" (higher is better) ends training when it stops improving;
    "" = off."""
    early_stopping_patience: int = 3
    """Epochs without an improvement of more than early_stopping_min_delta before training stops."""
    early_stopping_min_delta: float = 0.0
    """Smallest change of the metric that counts as an improvement."""
    auto_lr: bool = False
    """Run the LR range test (find_lr's defaults) first and use its "valley" suggestion as lr; stages with their
    own lr and group_lrs keep their rates."""
    precision: str = "auto"
    """auto (bf16 where the device supports it, else fp16 with loss scaling on GPU, else fp32), fp32, bf16 or
    fp16 (GPU only)."""
    valid_pct: float = 0.2
    """Share of images held out for validation when the data set has no valid/ (or val/) split."""
    seed: int = 0
    """Seed of initialisation, the split, shuffling (seed and epoch give each epoch's order) and augmentation."""
    flip: bool = True
    """Random horizontal flips while training (turn off for images whose handedness matters)."""
    device: str = "auto"
    """auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    num_workers: int = 0
    """DataLoader worker processes (0 decodes in the training process)."""
    threshold: float = 0.5
    """Multi-label: the score over which a label counts as predicted in the epoch metrics (accuracy and F-beta
    at threshold). The saved model also carries per-label thresholds tuned on the validation set."""
    fbeta_beta: float = 2.0
    """Multi-label: beta of the F-beta metric and of the threshold tuning (2 weighs recall over precision, as
    the Planet competition did)."""
    void_code: str | None = None
    """Segmentation: the class of codes.txt whose pixels are ignored; None = "Void" when there is one, "" = none."""

    def __post_init__(self) -> None:
        # Python callers may pass lists; tuples keep the config hashable and equal to its from_dict copy.
        object.__setattr__(self, "group_lrs", tuple(self.group_lrs))
        object.__setattr__(self, "stages", tuple(self.stages))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        _check_choice("task", self.task, TASKS)
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
        if not self.stages:
            if self.base.kind == "none" and self.epochs < 1:
                _fail("epochs", "must be >= 1 when base.kind is 'none' (a random body has to train)", self.epochs)
            if self.freeze_epochs + self.epochs < 1:
                _fail("epochs", "freeze_epochs + epochs must be >= 1", self.epochs)
        _check_float("lr", self.lr, 0.0, 10.0, open_lo=True)
        _check_float("lr_mult", self.lr_mult, 1.0, 1e6)
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        _check_float("pct_start", self.pct_start, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_float("div_factor", self.div_factor, 1.0, 1e6)
        _check_float("final_div_factor", self.final_div_factor, 1.0, 1e9)
        _check_float("moms_max", self.moms_max, 0.0, 1.0, open_hi=True)
        _check_float("moms_min", self.moms_min, 0.0, self.moms_max)
        self._validate_schedule()
        _check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, open_hi=True)
        _check_float("mixup_alpha", self.mixup_alpha, 0.0, 100.0)
        _check_float("grad_clip", self.grad_clip, 0.0, 1e6)
        _check_choice("early_stopping_metric", self.early_stopping_metric, EARLY_STOPPING_METRICS)
        _check_int("early_stopping_patience", self.early_stopping_patience, 1, 1000)
        _check_float("early_stopping_min_delta", self.early_stopping_min_delta, 0.0)
        if not isinstance(self.auto_lr, bool):
            _fail("auto_lr", "must be a boolean", self.auto_lr)
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
        _check_float("threshold", self.threshold, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_float("fbeta_beta", self.fbeta_beta, 0.0, 100.0, open_lo=True)
        if self.void_code is not None:
            _check_str("void_code", self.void_code)
            if self.task != SEGMENTATION:
                _fail("void_code", "applies to segmentation only", self.void_code)

    def _validate_schedule(self) -> None:
        if self.group_lrs and len(self.group_lrs) != N_LAYER_GROUPS:
            _fail("group_lrs", f"needs one rate per layer group ({N_LAYER_GROUPS}), earliest first", self.group_lrs)
        for i, lr in enumerate(self.group_lrs):
            _check_float(f"group_lrs[{i}]", lr, 0.0, 10.0, open_lo=True)
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                _fail(f"stages[{i}]", "must be a Stage", stage)
            if stage.freeze_to >= N_LAYER_GROUPS:
                _fail(f"stages[{i}].freeze_to", f"must be < {N_LAYER_GROUPS} (the head group always trains)",
                      stage.freeze_to)
            if stage.lr and stage.freeze_to == 0 and self.group_lrs:
                _fail(f"stages[{i}].lr", "must be 0 when group_lrs is set (group_lrs set unfrozen stages' rates)",
                      stage.lr)

    @property
    def effective_freeze_epochs(self) -> int:
        """A random body must train from the start, so "none" skips the head-only phase."""
        return 0 if self.base.kind == "none" else self.freeze_epochs

    def resolved_stages(self) -> tuple[Stage, ...]:
        """The schedule as it runs: derived from freeze_epochs/epochs when stages is empty, with every stage's
        image_size and head-group lr filled in by the default rules."""
        stages = self.stages or tuple(
            Stage(epochs, freeze_to) for epochs, freeze_to in
            ((self.effective_freeze_epochs, N_LAYER_GROUPS - 1), (self.epochs, 0)) if epochs)
        return tuple(dataclasses.replace(s, image_size=s.image_size or self.image_size, lr=s.lr or self._default_lr(s))
                     for s in stages)

    def _default_lr(self, stage: Stage) -> float:
        if stage.freeze_to:
            return self.lr
        return self.group_lrs[-1] if self.group_lrs else self.lr / 2

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("lr", "lr_mult", "weight_decay", "pct_start", "div_factor", "final_div_factor", "moms_max",
                     "moms_min", "label_smoothing", "mixup_alpha", "grad_clip", "early_stopping_min_delta",
                     "valid_pct", "threshold", "fbeta_beta"):
            data[name] = float(data[name])
        data["group_lrs"] = [float(lr) for lr in self.group_lrs]
        data["stages"] = [stage.to_dict() for stage in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FineTuneConfig:
        return cls(**recipe_fields(cls, data))


def recipe_fields(cls: type, data: Any) -> dict[str, Any]:
    """A recipe config's (FineTuneConfig's, TextConfig's) fields from JSON: unknown keys refused, base and
    stages as their dataclasses, lists as tuples."""
    values = _known_fields(cls, data, "config")
    if "base" in values:
        values["base"] = BaseWeights.from_dict(values["base"])
    for name in ("stages", "group_lrs"):
        if name in values and not isinstance(values[name], (list, tuple)):
            _fail(name, "must be a list", values[name])
    if "stages" in values:
        values["stages"] = tuple(Stage.from_dict(stage) for stage in values["stages"])
    if "group_lrs" in values:
        values["group_lrs"] = tuple(values["group_lrs"])
    return values
