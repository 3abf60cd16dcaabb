"""Classification results as plain Python values, shared by images (``classify``), texts (``predict_text``)
and table rows (``predict_tabular``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class LabelProbability(NamedTuple):
    """One ``(label, probability)`` pair; a tuple, so it unpacks and compares as one."""

    label: str
    probability: float


def top_of(scores: Iterable[Any]) -> list[LabelProbability]:
    """The pairs of the ``ClassScore`` messages of one result, in the server's (most probable first) order."""
    return [LabelProbability(s.label, s.probability) for s in scores]


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one image (or text), most probable first."""

    name: str
    """The input's name: the path as given, ``bytes[i]`` for raw bytes, ``text[i]`` for texts."""
    top: list[LabelProbability] = field(default_factory=list)
    """``(label, probability)`` pairs."""
    model: str = ""
    """The model version that answered, as ``"name/version"``."""
    raw: Any = field(default=None, repr=False, compare=False)
    """The result message (``fineserve.v1.Classification`` or ``TextPrediction``)."""

    @property
    def label(self) -> str | None:
        """The most probable label."""
        return self.top[0][0] if self.top else None

    @property
    def probability(self) -> float | None:
        """The most probable label's probability."""
        return self.top[0][1] if self.top else None


def answered(response: Any) -> str:
    """The ``"name/version"`` that answered an inference call (``""`` when the server did not say)."""
    return f"{response.model.name}/{response.model.version}" if response.HasField("model") else ""
