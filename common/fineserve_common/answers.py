"""What travels between the front door and the serving replicas, typed: the Recommend query in, each replica
method's answer out. Pure Python, so the front door reads the answers without torch and the engine builds some
of them itself. Input a model cannot take comes back as a Refused value rather than a raised error, so that
Ray does not log a stack trace per bad image; the front door raises it (service/replica_calls.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fineserve_common.errors import FineserveError, from_status


@dataclass(frozen=True)
class Refused:
    """A replica's refusal: the status name and message of the fineserve_common error it stands for."""

    status: str
    message: str

    @classmethod
    def of(cls, error: FineserveError) -> Refused:
        return cls(error.status, error.message)

    def error(self) -> FineserveError:
        """The error to raise (an unknown status name is INTERNAL)."""
        return from_status(self.status, self.message)


@dataclass(frozen=True)
class TopClasses:
    """One image's or text's (class, probability) pairs, most probable first."""

    top: list[tuple[str, float]]


@dataclass(frozen=True)
class LabelScores:
    """One image's multi-label scores (the engine's answer as it is)."""

    scores: list[tuple[str, float]]
    """(label, sigmoid score) for every label, in the model's label order."""
    predicted: list[str]
    """Labels over their threshold, highest score first."""


@dataclass(frozen=True)
class Segmentation:
    """One image's answer: the mask PNG (palette mode, pixel value = class index) at the input's size."""

    width: int
    height: int
    mask_png: bytes
    shares: list[tuple[str, float]]
    """(class, share of the image's pixels predicted as it), every class in index order."""
    probabilities: list[tuple[str, bytes]]
    """(class, 8-bit PNG of its probability * 255) when asked for, else []."""


@dataclass(frozen=True)
class Heatmap:
    """One image's Grad-CAM explanation, the map flattened (a tensor stays on the replica)."""

    target: str
    """The class or label explained."""
    height: int
    width: int
    grid: list[float]
    """The (height, width) map at its stage's resolution, row-major, in [0, 1]."""
    overlay_png: bytes
    probability: float = 0.0
    """The target's served probability (segmentation: its share of the pixels)."""
    layer: str = ""
    """The ResNet stage the map was taken at (an earlier one than layer4 for small inputs)."""
    warning: str = ""


@dataclass(frozen=True)
class TabularPrediction:
    """One row's answer: top classes (classification) or a value (regression); the other stays empty."""

    value: float = 0.0
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class RecommendQuery:
    """A checked Recommend request: which users, item or pairs to answer for, kind saying which is set."""

    kind: Literal["users", "similar", "pairs", "bias"]
    k: int
    fallback: bool
    """Answer unknown users or items with popular items rather than NOT_FOUND."""
    users: list[str] = field(default_factory=list)
    item: str = ""
    pairs: list[tuple[str, str]] = field(default_factory=list)
    """(user id, item id)."""


@dataclass(frozen=True)
class ScoredItem:
    item_id: str
    score: float
    title: str


@dataclass(frozen=True)
class Recommended:
    """One user's recommendations, or the items similar to one item (or of the highest bias)."""

    items: list[ScoredItem]
    fallback: bool


@dataclass(frozen=True)
class PerUser:
    """A users query's answer: one Recommended per user, in the query's order."""

    users: list[Recommended]


@dataclass(frozen=True)
class Ratings:
    """A pairs query's answer: one predicted rating per pair."""

    ratings: list[float]
    fallback: bool
