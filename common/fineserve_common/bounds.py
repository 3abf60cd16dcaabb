"""Bounds of every number a caller may set, in one table: the front door checks a request against it once,
and the engine's configs check themselves against the same entries (a notebook user gets the same refusal).
A field's default belongs to its config (configs.py), since it differs by task family."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument
from .names import clip


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    integer: bool = False
    open_low: bool = False
    open_high: bool = False

    def __str__(self) -> str:
        return f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"

    def holds(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below


def _i(low: int, high: int) -> Bound:
    return Bound(low, high, integer=True)


BOUNDS: dict[str, Bound] = {
    # the training recipe (every family)
    "epochs": _i(0, 1000), "freeze_epochs": _i(0, 1000), "batch_size": _i(2, 65536),
    "lr": Bound(0.0, 10.0, open_low=True), "lr_mult": Bound(1.0, 1e6), "weight_decay": Bound(0.0, 10.0),
    "pct_start": Bound(0.0, 1.0, open_low=True, open_high=True), "div_factor": Bound(1.0, 1e6),
    "final_div_factor": Bound(1.0, 1e9), "moms_max": Bound(0.0, 1.0, open_high=True),
    "moms_min": Bound(0.0, 1.0, open_high=True), "grad_clip": Bound(0.0, 1e6),
    "valid_pct": Bound(0.0, 1.0, open_low=True, open_high=True), "seed": _i(0, 2**63 - 1),
    "early_stopping_patience": _i(1, 1000), "early_stopping_min_delta": Bound(0.0, 1e9),
    "group_lr": Bound(0.0, 10.0, open_low=True),
    "stage_epochs": _i(1, 1000), "stage_lr": Bound(0.0, 10.0),
    "n_stages": _i(0, 100), "total_epochs": _i(1, 1000),
    "num_workers": _i(0, 64), "workers": _i(0, 64),
    "gpus_per_worker": Bound(0.0, 16.0), "cpus_per_worker": Bound(0.0, 1024.0),
    # vision; pixels_per_batch (batch_size x image_size^2) bounds what a batch of the largest stage holds: ResNet-50
    # at 224 px in batches of 256 is 12.8M, well inside one GPU; 1024 px in batches of 1024 (1.07G) is not
    "image_size": _i(16, 2048), "pixels_per_batch": _i(1, 2**25),
    "label_smoothing": Bound(0.0, 1.0, open_high=True), "mixup_alpha": Bound(0.0, 100.0),
    "threshold": Bound(0.0, 1.0, open_low=True, open_high=True), "fbeta_beta": Bound(0.0, 100.0, open_low=True),
    # batch augmentation (vision/augment.py): a warp under 0.5 keeps the image upright, lighting under 1 finite
    "min_scale": Bound(0.0, 1.0, open_low=True), "max_rotate": Bound(0.0, 180.0), "max_zoom": Bound(1.0, 4.0),
    "max_warp": Bound(0.0, 0.45), "max_lighting": Bound(0.0, 0.9), "p_affine": Bound(0.0, 1.0),
    "p_lighting": Bound(0.0, 1.0),
    # text (AWD-LSTM, ULMFiT)
    "emb_size": _i(2, 4096), "hidden_size": _i(2, 8192), "n_layers": _i(1, 8), "max_vocab": _i(16, 1_000_000),
    "min_freq": _i(1, 1_000_000), "bptt": _i(8, 10_000), "max_len": _i(8, 100_000), "drop_mult": Bound(0.0, 2.0),
    "group_lr_ratio": Bound(1.0, 100.0),
    # the AWD-LSTM's parameters (embedding + LSTMs, TextConfig.parameters): the published model has 44M;
    # hidden_size 8192 x 8 layers would have 3.8G
    "text_parameters": _i(1, 500_000_000),
    # collaborative filtering and tabular
    "n_factors": _i(1, 1024), "layer_width": _i(1, 4096), "n_hidden_layers": _i(1, 8),
    "dropout": Bound(0.0, 1.0, open_high=True), "embedding_dropout": Bound(0.0, 1.0, open_high=True),
    "y_range": Bound(-1e9, 1e9), "n_columns": _i(0, 1000),
    # the LR range test
    "start_lr": Bound(0.0, 1e3, open_low=True), "end_lr": Bound(0.0, 1e3, open_low=True),
    "num_batches": _i(1, 10_000),
}


def check(name: str, value: Any, where: str = "", bound: str | None = None) -> Any:
    """value if it is a number within BOUNDS[bound or name]; else InvalidArgument naming where+name, the value
    and the interval (bools are not numbers; floats must be finite; integer bounds take ints only)."""
    spec = BOUNDS[bound or name]
    label = f"{where}.{name}" if where else name
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{label} must be a number (got {clip(value)})")
    if spec.integer and not isinstance(value, int):
        raise InvalidArgument(f"{label} must be an integer (got {clip(value)})")
    if not math.isfinite(value) or not spec.holds(value):
        raise InvalidArgument(f"{label}={value:g} is outside {spec}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...], where: str = "") -> str:
    """value if it is one of choices; else InvalidArgument listing them."""
    if value not in choices:
        label = f"{where}.{name}" if where else name
        raise InvalidArgument(f"{label} must be one of {', '.join(choices)} (got {clip(value)})")
    return value
