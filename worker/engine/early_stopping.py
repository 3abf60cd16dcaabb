"""Early stopping on a validation metric, with a JSON-able state so a resumed job keeps counting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

HIGHER_IS_BETTER = {"valid_loss": False, "accuracy": True, "fbeta": True}


class EarlyStopping:
    """Stops when `metric` has not improved by more than min_delta on its best value for `patience` epochs in a
    row. Which epoch's weights the job stores is BestEpoch's concern. metric "" never stops."""

    def __init__(self, metric: str, patience: int, min_delta: float) -> None:
        self.metric = metric
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.bad_epochs = 0
        self.stopped = False

    def update(self, metrics: dict[str, float]) -> bool:
        """Record one epoch's metrics; True once training should stop."""
        if not self.metric:
            return False
        value = metrics[self.metric]
        sign = 1.0 if HIGHER_IS_BETTER[self.metric] else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        self.stopped = self.bad_epochs >= self.patience
        return self.stopped

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # An embedding job checkpointed before these jobs shared the runner saved {}.
        self.best = state.get("best")
        self.bad_epochs, self.stopped = state.get("bad_epochs", 0), state.get("stopped", False)


KEPT_METRICS = ("fbeta", "accuracy", "valid_loss")
"""What a job keeps its best epoch by, without an early-stopping metric: the first of these its epochs report
(multi-label: F-beta; other classifiers: accuracy; loss-only tasks: the validation loss)."""


def kept_metric(early_stopping_metric: str, metrics: dict[str, float]) -> str:
    """The metric the job optimises: its early-stopping metric when it has one (stopping and keeping then agree),
    else the first of KEPT_METRICS in its epoch metrics."""
    return early_stopping_metric or next(m for m in KEPT_METRICS if m in metrics)


class BestEpoch:
    """The epoch whose weights a job stores: with keep "best" the best so far by its metric (a CPU copy of its
    weights is held from the epoch it was reached; a later, worse epoch does not replace it), with "last" the
    last. A JSON-able state and the copy go into each checkpoint, so a resumed job keeps the same best."""

    def __init__(self, keep: str, early_stopping_metric: str) -> None:
        self.keep, self.early_stopping_metric = keep, early_stopping_metric
        self.metric = ""
        self.epoch = 0
        self.value: float | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metrics: dict[str, float], weights: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Record an epoch's metrics; weights() is read only when this epoch becomes the one kept."""
        self.metric = self.metric or kept_metric(self.early_stopping_metric, metrics)
        value = metrics[self.metric]
        better = self.value is None or (value > self.value if HIGHER_IS_BETTER[self.metric] else value < self.value)
        if self.keep == "last" or better:
            self.epoch, self.value = epoch, value
            self.weights = None if self.keep == "last" else {k: v.detach().to("cpu", copy=True)
                                                               for k, v in weights().items()}

    def card(self) -> dict[str, Any]:
        """The card's "kept" field: which epoch's weights the model holds, and why."""
        return {"keep": self.keep, "epoch": self.epoch, "metric": self.metric, "value": self.value}

    def state_dict(self) -> dict[str, Any]:
        return {"keep": self.keep, "metric": self.metric, "epoch": self.epoch, "value": self.value}

    def load_state_dict(self, state: dict[str, Any] | None, weights: dict[str, torch.Tensor] | None,
                        current: Callable[[], dict[str, torch.Tensor]]) -> None:
        """A checkpoint's best epoch; weights None: they are the checkpoint's model (current())."""
        if not state:
            return
        self.metric, self.epoch, self.value = state["metric"], state["epoch"], state["value"]
        if self.keep == "best":
            self.weights = weights if weights is not None else {k: v.detach().to("cpu", copy=True)
                                                                for k, v in current().items()}
