"""What every task family's config shares: base weights, 1cycle stages, and reading configs back from JSON.
Each config checks itself against the one bounds table (bounds.py) when built, so a bad field fails before any
data is read, in the front door and in a notebook alike."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..bounds import check, check_choice
from ..errors import InvalidArgument
from ..names import CLIP_CHARS, clip, shorten
from ..tasks import PRECISIONS

BASE_KINDS = ("torchvision", "file", "store", "none")
EARLY_STOPPING_METRICS = ("", "valid_loss", "accuracy")
KEEP_CHOICES = ("best", "last")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")

C = TypeVar("C")


def fail(name: str, problem: str, value: Any) -> None:
    raise InvalidArgument(f"invalid {name}: {problem} (got {clip(value)})")


def check_str(name: str, value: Any) -> None:
    if not isinstance(value, str):
        fail(name, "must be a string", value)


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        fail(name, "must be a boolean", value)


def check_device(device: Any, precision: str) -> None:
    if not isinstance(device, str) or not DEVICE.fullmatch(device):
        fail("device", "must be auto, cpu, cuda or cuda:N", device)
    if device == "cpu" and precision == "fp16":
        fail("precision", "fp16 needs a GPU (use bf16 or fp32 on cpu)", precision)


def check_fields(cfg: Any, names: tuple[str, ...]) -> None:
    """Each named field of cfg within its bound (bounds.BOUNDS)."""
    for name in names:
        check(name, getattr(cfg, name))


def check_momentum(cfg: Any) -> None:
    check_fields(cfg, ("moms_max", "moms_min"))
    if cfg.moms_min > cfg.moms_max:
        fail("moms_min", f"must not exceed moms_max ({cfg.moms_max:g})", cfg.moms_min)


def check_early_stopping(cfg: Any) -> None:
    check_choice("early_stopping_metric", cfg.early_stopping_metric, EARLY_STOPPING_METRICS)
    check_fields(cfg, ("early_stopping_patience", "early_stopping_min_delta"))


def known_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """Reject non-mappings and unknown keys, which would otherwise be silently ignored typos."""
    if not isinstance(data, Mapping):
        fail(where, "must be an object", data)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        names = ", ".join(shorten(str(n), CLIP_CHARS) for n in unknown[:5])
        raise InvalidArgument(f"unknown field(s) in {where}: {names}")
    return dict(data)


@dataclass(frozen=True)
class OneCycle:
    """The 1cycle policy's settings, which every task family trains with (the engine's schedule.py): the LR
    warms up from max/div_factor to max and anneals to max/(div_factor*final_div_factor), while AdamW's beta1
    falls from moms_max to moms_min and back. The families' configs inherit these fields (text overrides the
    momentum defaults)."""

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
    keep: str = "best"
    """Which epoch's weights the job stores: "best" (by the validation metric it optimises: the early-stopping
    metric when set, else fbeta, accuracy or valid_loss, the first the task reports) or "last". Every family's
    config inherits it with the 1cycle fields, since every job runs epochs."""

    def check_one_cycle(self) -> None:
        check_fields(self, ("pct_start", "div_factor", "final_div_factor"))
        check_momentum(self)
        check_choice("keep", self.keep, KEEP_CHOICES)


def check_run(cfg: Any) -> None:
    """The fields every transfer-learning config (images, text) runs with: early stopping, auto_lr, precision,
    the validation share, the seed and the device."""
    check_early_stopping(cfg)
    check_bool("auto_lr", cfg.auto_lr)
    check_choice("precision", cfg.precision, PRECISIONS)
    check_fields(cfg, ("valid_pct", "seed"))
    check_device(cfg.device, cfg.precision)


@dataclass(frozen=True)
class BaseWeights:
    """Where the pretrained body comes from."""

    kind: str
    """"torchvision" (a weight enum through torchvision's cache), "file" (a state dict), "store" (a fineserve
    model directory) or "none" (random init)."""
    name: str = "DEFAULT"
    """For "torchvision": the weight enum member, e.g. "IMAGENET1K_V1" or "DEFAULT" (the engine checks it
    against torchvision's enum of the arch); for "store": the stored model's name/version, for the card."""
    path: str = ""
    """For "file": a .safetensors (preferred) or .pth/.pt state dict; for "store": a model directory."""

    def __post_init__(self) -> None:
        check_choice("base.kind", self.kind, BASE_KINDS)
        check_str("base.name", self.name)
        check_str("base.path", self.path)
        if self.kind in ("file", "store") and not self.path:
            fail("base.path", f"is required when base.kind is {self.kind!r}", self.path)

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaseWeights:
        return cls(**known_fields(cls, data, "base"))


@dataclass(frozen=True)
class Stage:
    """One 1cycle of the training schedule: some epochs at one freeze depth (and, for images, one size)."""

    epochs: int
    """Epochs of this 1cycle (>= 1)."""
    freeze_to: int
    """Layer groups [0, freeze_to) are frozen (their BatchNorm still trains); 0 trains every group."""
    image_size: int = 0
    """Images only: input size of this stage; 0 = the config's image_size. Another size rebuilds the data loaders
    and the weights carry on (progressive resizing)."""
    lr: float = 0.0
    """Max LR of the head group; 0 = the config's default rule."""

    def __post_init__(self) -> None:
        check("stage.epochs", self.epochs, bound="stage_epochs")
        if isinstance(self.freeze_to, bool) or not isinstance(self.freeze_to, int) or self.freeze_to < 0:
            fail("stage.freeze_to", "must be an integer >= 0", self.freeze_to)
        if self.image_size:
            check("stage.image_size", self.image_size, bound="image_size")
        check("stage.lr", self.lr, bound="stage_lr")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "lr": float(self.lr)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        return cls(**known_fields(cls, data, "stage"))


def check_stages(stages: tuple[Stage, ...], n_groups: int) -> None:
    check("len(stages)", len(stages), bound="n_stages")
    for i, stage in enumerate(stages):
        if not isinstance(stage, Stage):
            fail(f"stages[{i}]", "must be a Stage", stage)
        if stage.freeze_to >= n_groups:
            fail(f"stages[{i}].freeze_to", f"must be < {n_groups} (the last layer group always trains)",
                 stage.freeze_to)


def check_total_epochs(stages: tuple[Stage, ...]) -> None:
    """The schedule as it runs, over all its stages, within the epoch bound: each stage's own bound alone would
    let 10,000 one-epoch stages through."""
    check("total epochs (over all stages)", sum(s.epochs for s in stages), bound="total_epochs")


def recipe_fields(cls: type, data: Any) -> dict[str, Any]:
    """A recipe config's fields from JSON: unknown keys refused, base and stages as their dataclasses, lists as
    tuples."""
    values = known_fields(cls, data, "config")
    if "base" in values:
        values["base"] = BaseWeights.from_dict(values["base"])
    for name in ("stages", "group_lrs"):
        if name in values and not isinstance(values[name], list | tuple):
            fail(name, "must be a list", values[name])
    if "stages" in values:
        values["stages"] = tuple(Stage.from_dict(stage) for stage in values["stages"])
    if "group_lrs" in values:
        values["group_lrs"] = tuple(values["group_lrs"])
    return values


def as_dict(cfg: Any) -> dict[str, Any]:
    """JSON of a config: float fields as floats (a config and its JSON copy fingerprint alike, checkpoint.py),
    tuples as lists, stages as their dicts."""
    data = dataclasses.asdict(cfg)
    for f in dataclasses.fields(cfg):
        if f.type == "float":
            data[f.name] = float(data[f.name])
        elif f.type == "tuple[float, ...]":
            data[f.name] = [float(v) for v in data[f.name]]
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    if "stages" in data:
        data["stages"] = [stage.to_dict() for stage in cfg.stages]
    return data
