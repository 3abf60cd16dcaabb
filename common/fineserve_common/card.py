"""The model card: card.json beside model.safetensors in a model directory, all that is needed to rebuild,
serve and describe the model (never code: the weights are safetensors). The engine writes it, the control
plane's registry indexes it, replicas and the SDK read it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FailedPrecondition

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


class ModelCardError(FailedPrecondition):
    """A model directory's card is missing, unreadable or of another format version."""


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """write(temporary name beside path), then rename over path, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_card(model_dir: Path, card: dict[str, Any]) -> None:
    """The card last, atomically: a directory with a card.json is a complete model."""

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
            f.write("\n")

    write_atomically(model_dir / CARD_FILE, dump)


def read_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelCardError(f"cannot read model card {path}: {e}") from e
    if not isinstance(card, dict) or card.get("format_version") != FORMAT_VERSION:
        raise ModelCardError(f"{path} is not a version {FORMAT_VERSION} fineserve model card")
    return card


@dataclass(frozen=True)
class CardSummary:
    """What the registry shows of a card (GetModel, ListModels)."""

    task: str
    arch: str
    classes: list[str]
    metrics: dict[str, float]
    base: str
    """The base weights as the engine saw them ("torchvision ResNet18_Weights.IMAGENET1K_V1 from <cache>")."""

    @classmethod
    def of(cls, card: dict[str, Any]) -> CardSummary:
        base = card.get("base", {})
        return cls(task=card["task"], arch=card.get("arch", ""), classes=list(card.get("classes", [])),
                   metrics={k: float(v) for k, v in card.get("metrics", {}).items()
                            if isinstance(v, int | float) and not isinstance(v, bool)},
                   base=str(base.get("description") or base.get("kind", "unknown")))
