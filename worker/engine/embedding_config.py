"""Configurations of the embedding tasks (collaborative filtering, tabular): fast.ai's 1cycle recipe without the
image-only knobs, plus each task's data and model options. JSON round-trippable, validated up front."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import PRECISIONS, _check_choice, _check_float, _check_int, _check_str, _fail, _known_fields
from .ratings_data import RatingsFormat

COLLAB_ARCHS = ("dot", "neural")
SPLITS = ("random", "time")


@dataclass(frozen=True)
class EmbeddingRecipe:
    """One 1cycle over all parameters with AdamW (decoupled weight decay); the fields schedule.py reads."""

    epochs: int = 5
    lr: float = 5e-3
    weight_decay: float = 0.1
    """fast.ai's collab/tabular value: embeddings overfit quickly without it."""
    batch_size: int = 64
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e5
    moms_max: float = 0.95
    moms_min: float = 0.85
    valid_pct: float = 0.2
    seed: int = 0
    """Seed of the split, the initialisation and the batch order."""
    precision: str = "fp32"
    """fp32 by default: these models are small and bf16 rounding costs accuracy for no speed."""
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, 1, 1000)
        _check_float("lr", self.lr, 0.0, 10.0, open_lo=True)
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        _check_int("batch_size", self.batch_size, 2, 1 << 16)
        _check_float("pct_start", self.pct_start, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_float("div_factor", self.div_factor, 1.0, 1e6)
        _check_float("final_div_factor", self.final_div_factor, 1.0, 1e9)
        _check_float("moms_max", self.moms_max, 0.0, 1.0, open_hi=True)
        _check_float("moms_min", self.moms_min, 0.0, self.moms_max)
        _check_float("valid_pct", self.valid_pct, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_str("device", self.device)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        values = _known_fields(cls, data, "config")
        for f in dataclasses.fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        if "ratings" in values and isinstance(values["ratings"], Mapping):
            values["ratings"] = RatingsFormat(**_known_fields(RatingsFormat, values["ratings"], "ratings"))
        return cls(**values)


def _check_layers(name: str, layers: Any) -> None:
    if not isinstance(layers, tuple) or not 1 <= len(layers) <= 8:
        _fail(name, "must be 1 to 8 layer widths", layers)
    for width in layers:
        _check_int(f"{name}[]", width, 1, 4096)


@dataclass(frozen=True)
class CollabConfig(EmbeddingRecipe):
    ratings: RatingsFormat = dataclasses.field(default_factory=RatingsFormat)
    weight_decay: float = 0.15
    """On the factors only (biases are not decayed); fast.ai's 0.1 decays the biases too."""
    arch: str = "dot"
    """"dot": dot product + biases; "neural": concatenated embeddings through an MLP."""
    n_factors: int = 50
    """Embedding width of the dot-product model (the neural one sizes its embeddings by the tabular rule)."""
    y_range: tuple[float, ...] = ()
    """(low, high) of the sigmoid; () = 5% of the rating span beyond each end (collab_training.y_range_for)."""
    split: str = "random"
    """"random" (seeded) or "time" (the latest valid_pct of the ratings validate)."""
    layers: tuple[int, ...] = (100,)
    """Hidden widths of the neural variant."""
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "y_range", tuple(float(v) for v in self.y_range))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.ratings, RatingsFormat):
            _fail("ratings", "must be a RatingsFormat", self.ratings)
        _check_choice("arch", self.arch, COLLAB_ARCHS)
        _check_int("n_factors", self.n_factors, 1, 1024)
        if self.y_range and (len(self.y_range) != 2 or not self.y_range[0] < self.y_range[1]):
            _fail("y_range", "must be (low, high) with low < high", self.y_range)
        _check_choice("split", self.split, SPLITS)
        _check_layers("layers", self.layers)
        _check_float("dropout", self.dropout, 0.0, 1.0, open_hi=True)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ratings": dataclasses.asdict(self.ratings)}


@dataclass(frozen=True)
class TabularConfig(EmbeddingRecipe):
    target: str = ""
    """The column to predict (required)."""
    categorical: tuple[str, ...] = ()
    continuous: tuple[str, ...] = ()
    """Both empty: every other column, numeric ones continuous and the rest categorical."""
    regression: bool | None = None
    """None: classification unless every target value is a number with more than MAX_CLASSES distinct values."""
    data_file: str = ""
    """CSV inside the dataset; "" = its only *.csv (or *.tsv/*.txt) file."""
    separator: str = ""
    layers: tuple[int, ...] = (200, 100)
    dropout: float = 0.1
    embedding_dropout: float = 0.0
    batch_size: int = 256
    lr: float = 1e-2

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "continuous", tuple(self.continuous))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.target, str) or not self.target:
            _fail("target", "is required: the name of the column to predict", self.target)
        for name in (*self.categorical, *self.continuous):
            _check_str("columns", name)
        both = set(self.categorical) & set(self.continuous)
        if both or self.target in (*self.categorical, *self.continuous):
            _fail("columns", "a column is at most one of target, categorical, continuous",
                  sorted(both) or self.target)
        if self.regression is not None and not isinstance(self.regression, bool):
            _fail("regression", "must be a boolean or None", self.regression)
        _check_layers("layers", self.layers)
        _check_float("dropout", self.dropout, 0.0, 1.0, open_hi=True)
        _check_float("embedding_dropout", self.embedding_dropout, 0.0, 1.0, open_hi=True)
