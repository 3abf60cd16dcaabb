"""Exceptions the engine raises, so callers can map failures to user-facing errors without parsing text."""


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class WeightsUnavailable(EngineError):
    """Requested base weights cannot be loaded; the engine never falls back to random weights instead."""


class DatasetError(EngineError):
    """The data set is unusable (layout, classes, images), independent of the model or hyperparameters."""


class InvalidImage(EngineError):
    """One input image cannot be decoded; `index` says which one so a batch caller can point at it."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"image {index}: {reason}")
        self.index = index
        self.reason = reason


class Cancelled(EngineError):
    """Training stopped because `should_stop()` asked for it; no model is written (a checkpoint of the last
    finished epoch may remain in out_dir/checkpoint, for a rerun to resume from)."""
