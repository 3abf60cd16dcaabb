"""A tiny text progress bar on stderr, hand-written so that the SDK depends only on grpcio and protobuf."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["ProgressBar"]


def format_metrics(metrics: Any, sep: str = "  ") -> str:
    """Metrics as "name value" pairs in name order; the CLI's tables use them too, so both read alike."""
    return sep.join(f"{key} {value:.4g}" for key, value in sorted(dict(metrics).items()))


def format_bytes(n: float) -> str:
    """A byte count in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class ProgressBar:
    """Shows job events (``fineserve.v1.JobEvent``) and byte transfers.

    On a terminal the current line is redrawn in place (phase, epoch i/n, batch j/m, a bar, the last loss);
    otherwise only whole lines are written: state changes, one line per epoch with its metrics, log
    messages. Disabled, it writes nothing.
    """

    def __init__(
        self,
        enabled: bool = True,
        stream: TextIO | None = None,
        *,
        width: int = 24,
        tty: bool | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.width = width
        self.min_interval = min_interval
        self._live = 0  # length of the line currently drawn in place (tty only)
        self._last_draw = 0.0
        self._loss: float | None = None
        self._transfer_done = False

    # -- job events ---------------------------------------------------------------------------------

    def event(self, event: Any) -> None:
        """Show one ``JobEvent``."""
        if not self.enabled:
            return
        kind = event.WhichOneof("event")
        if kind == "batch":
            self._batch(event.batch)
        elif kind == "epoch":
            e = event.epoch
            parts = [f"epoch {e.epoch}/{e.epochs}"]
            if e.phase:
                parts.append(f"({e.phase})")
            if e.metrics:
                parts.append(format_metrics(e.metrics))
            if e.seconds:
                parts.append(f"{e.seconds:.1f}s")
            self.line("  ".join(parts))
        elif kind == "state":
            from fineserve.v1 import training_pb2

            state = training_pb2.JobState.Name(event.state.state)
            reason = f": {event.state.reason}" if event.state.reason else ""
            self.line(f"job {event.job_id} {state}{reason}")
        elif kind == "log":
            self.line(event.log.message)
        # checkpoint events are not shown

    def _batch(self, b: Any) -> None:
        if b.loss or self._loss is None:
            self._loss = b.loss
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw < self.min_interval and b.batch < b.batches:
            return
        self._last_draw = now
        frac = min(max(b.batch / b.batches, 0.0), 1.0) if b.batches else 0.0
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"{b.phase or 'train'}  epoch {b.epoch}/{b.epochs}  batch {b.batch}/{b.batches} [{bar}]"
        if self._loss is not None:
            text += f"  loss {self._loss:.4f}"
        self._draw(text)

    # -- transfers ------------------------------------------------------------------------------------

    def transfer(self, done: int, total: int, label: str = "upload") -> None:
        """Show ``done`` of ``total`` bytes sent."""
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < self.min_interval and done < total:
                return
            self._last_draw = now
            frac = min(done / total, 1.0) if total else 1.0
            filled = round(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self._draw(f"{label} [{bar}] {format_bytes(done)} / {format_bytes(total)}")
        elif done >= total and not self._transfer_done:
            self._transfer_done = True
            self.line(f"{label}: {format_bytes(total)} sent")

    # -- output ---------------------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """Write a whole line (clearing the bar drawn in place, if any)."""
        if not self.enabled:
            return
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line drawn in place, if any."""
        if self.enabled and self.tty and self._live:
            self.stream.write("\n")
            self.stream.flush()
            self._live = 0

    def _draw(self, text: str) -> None:
        pad = max(self._live - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._live = len(text)

    def _clear(self) -> None:
        if self.tty and self._live:
            self.stream.write("\r" + " " * self._live + "\r")
            self._live = 0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
