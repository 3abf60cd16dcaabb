"""Early stopping on a validation metric, with a JSON-able state so a resumed job keeps counting."""

from __future__ import annotations

from typing import Any

HIGHER_IS_BETTER = {"valid_loss": False, "accuracy": True}


class EarlyStopping:
    """Stops when `metric` has not improved by more than min_delta on its best value for `patience` epochs in a
    row. The model kept is the last epoch's, not the best one's. metric "" never stops."""

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
