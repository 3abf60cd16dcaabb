"""Configs of the tabular family (collaborative filtering, tabular): fast.ai's 1cycle recipe without the
transfer-learning knobs (these models train from scratch), plus each task's data and model options."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..bounds import check, check_choice
from ..names import check_relative_path, check_text
from ..tasks import COLLABORATIVE_FILTERING, PRECISIONS, TABULAR_MODEL, task
from .recipe import OneCycle, as_dict, check_fields, check_str, fail, known_fields

SPLITS = ("random", "time")
FILE_FIELDS = ("ratings_file", "items_file")
SEPARATOR_FIELDS = ("separator", "items_separator")


def check_separator(field: str, value: str) -> str:
    """"" (sniffed) or one printable character or TAB."""
    if not isinstance(value, str) or len(value) > 1 or (value and value != "\t" and not value.isprintable()):
        fail(field, "must be one printable character or TAB (or empty to sniff it)", value)
    return value


def check_columns(field: str, names: tuple[str, ...]) -> None:
    """Column names: a bounded number of bounded printable names."""
    check(f"len({field})", len(names), bound="n_columns")
    for name in names:
        check_text(f"{field}[]", name)


@dataclass(frozen=True)
class RatingsFormat:
    """Where the ratings are and how to read them. Columns are header names or 0-based positions."""

    ratings_file: str = ""
    """Path relative to the dataset directory; "" = its only *.csv, *.tsv, *.data or *.txt file."""
    separator: str = ""
    """"" = sniffed from the first line (the most frequent of , TAB ; |)."""
    user_column: str = ""
    """"" = the first column."""
    item_column: str = ""
    """"" = the second column."""
    rating_column: str = ""
    """"" = the third column."""
    timestamp_column: str = ""
    """"" = the fourth column when there is one (needed by the time split only)."""
    items_file: str = ""
    """Item metadata (titles), relative to the dataset directory; "" = none."""
    items_separator: str = ""
    item_id_column: str = ""
    """Of the items file; "" = its first column."""
    title_column: str = ""
    """Of the items file; "" = its second column."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in FILE_FIELDS:
                if value:
                    check_relative_path(f"ratings.{f.name}", value)
            elif f.name in SEPARATOR_FIELDS:
                check_separator(f"ratings.{f.name}", value)
            else:
                check_text(f"ratings.{f.name}", value)


@dataclass(frozen=True)
class EmbeddingRecipe(OneCycle):
    """One 1cycle over all parameters with AdamW (decoupled weight decay)."""

    epochs: int = 5
    lr: float = 5e-3
    weight_decay: float = 0.1
    """fast.ai's collab/tabular value: embeddings overfit quickly without it."""
    batch_size: int = 64
    valid_pct: float = 0.2
    seed: int = 0
    """Seed of the split, the initialisation and the batch order."""
    precision: str = "fp32"
    """fp32 by default: these models are small and bf16 rounding costs accuracy for no speed."""
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self, ("epochs", "lr", "weight_decay", "batch_size"))
        if self.epochs < 1:
            fail("epochs", "must be >= 1 (these models train from scratch)", self.epochs)
        self.check_one_cycle()
        check_fields(self, ("valid_pct", "seed"))
        check_choice("precision", self.precision, PRECISIONS)
        check_str("device", self.device)

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        values = known_fields(cls, data, "config")
        for f in dataclasses.fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        if "ratings" in values and isinstance(values["ratings"], Mapping):
            values["ratings"] = RatingsFormat(**known_fields(RatingsFormat, values["ratings"], "ratings"))
        return cls(**values)


def _check_layers(name: str, layers: Any) -> None:
    if not isinstance(layers, tuple):
        fail(name, "must be a list of layer widths", layers)
    check(f"len({name})", len(layers), bound="n_hidden_layers")
    for width in layers:
        check(f"{name}[]", width, bound="layer_width")


@dataclass(frozen=True)
class CollabConfig(EmbeddingRecipe):
    task: ClassVar[str] = COLLABORATIVE_FILTERING
    ratings: RatingsFormat = dataclasses.field(default_factory=RatingsFormat)
    weight_decay: float = 0.15
    """On the factors only (biases are not decayed); fast.ai's 0.1 decays the biases too."""
    arch: str = "dot"
    """"dot": dot product + biases; "neural": concatenated embeddings through an MLP."""
    n_factors: int = 50
    """Embedding width of the dot-product model (the neural one sizes its embeddings by the tabular rule)."""
    y_range: tuple[float, ...] = ()
    """(low, high) of the sigmoid; () = 5% of the rating span beyond each end."""
    split: str = "random"
    """"random" (seeded) or "time" (the latest valid_pct of the ratings validate)."""
    layers: tuple[int, ...] = (100,)
    """Hidden widths of the neural variant."""
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.y_range, tuple | list) or len(self.y_range) not in (0, 2):
            fail("y_range", "must be (low, high) or ()", self.y_range)
        object.__setattr__(self, "y_range", tuple(float(check("y_range[]", v, bound="y_range")) for v in self.y_range))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.ratings, RatingsFormat):
            fail("ratings", "must be a RatingsFormat", self.ratings)
        check_choice("arch", self.arch, task(COLLABORATIVE_FILTERING).archs)
        check_fields(self, ("n_factors",))
        if self.y_range and not self.y_range[0] < self.y_range[1]:
            fail("y_range", "must be (low, high) with low < high", self.y_range)
        check_choice("split", self.split, SPLITS)
        _check_layers("layers", self.layers)
        check_fields(self, ("dropout",))


@dataclass(frozen=True)
class TabularConfig(EmbeddingRecipe):
    task: ClassVar[str] = TABULAR_MODEL
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
            fail("target", "is required: the name of the column to predict", self.target)
        check_text("target", self.target)
        check_columns("categorical", self.categorical)
        check_columns("continuous", self.continuous)
        if self.data_file:
            check_relative_path("data_file", self.data_file)
        check_separator("separator", self.separator)
        both = set(self.categorical) & set(self.continuous)
        if both or self.target in (*self.categorical, *self.continuous):
            fail("columns", "a column is at most one of target, categorical, continuous", sorted(both) or self.target)
        if self.regression is not None and not isinstance(self.regression, bool):
            fail("regression", "must be a boolean or None", self.regression)
        _check_layers("layers", self.layers)
        check_fields(self, ("dropout", "embedding_dropout"))
