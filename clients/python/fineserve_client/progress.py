"""Progress of jobs and uploads: tqdm's bars (``tqdm.auto``: rate, ETA, widgets in a notebook) when tqdm is
installed (``pip install 'fineserve-client[progress]'``) and the output is a terminal or a notebook; plain
lines otherwise (logs, pipes, and installs without tqdm), so the SDK itself depends only on grpcio and protobuf."""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["ProgressBar"]

INSTALL_HINT = "progress bars need tqdm: pip install 'fineserve-client[progress]'"


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


def _tqdm() -> Any:
    """``tqdm.auto.tqdm``, or None when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


class ProgressBar:
    """Shows job events (``fineserve.v1.JobEvent``) and byte transfers.

    Always as whole lines: state changes, one line per epoch with its metrics, log messages, the end of an
    upload. With ``bars`` (by default: when tqdm is installed and ``stream`` is a terminal or this runs in a
    notebook), also a tqdm bar per epoch over its batches (rate, ETA, the last loss) and one over the bytes
    of an upload, redrawn at most every ``min_interval`` seconds. Disabled, it writes nothing.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, *, tty: bool | None = None,
                 bars: bool | None = None, min_interval: float = 0.1) -> None:
        self.enabled = enabled
        self.min_interval = min_interval
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        tqdm = _tqdm()
        if bars and tqdm is None:
            raise ImportError(INSTALL_HINT)
        self._tqdm = tqdm if (bars if bars is not None else tqdm is not None and (tty or _in_notebook())) else None
        self._bar: Any = None
        self._bar_key: tuple[Any, ...] = ()
        self._transfer_done = False

    @property
    def bars(self) -> bool:
        """Whether tqdm bars are drawn (else only lines)."""
        return self._tqdm is not None

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
            self._end_bar()
            self.line("  ".join(parts))
        elif kind == "state":
            from fineserve.v1 import training_pb2

            state = training_pb2.JobState.Name(event.state.state)
            reason = f": {event.state.reason}" if event.state.reason else ""
            self._end_bar()
            self.line(f"job {event.job_id} {state}{reason}")
        elif kind == "log":
            self.line(event.log.message)
        # checkpoint events are not shown

    def _batch(self, b: Any) -> None:
        if self._tqdm is None or not b.batches:
            return
        bar = self._open_bar((b.phase, b.epoch), total=b.batches, unit="batch",
                             desc=f"{b.phase or 'train'} epoch {b.epoch}/{b.epochs}")
        if b.loss:
            bar.set_postfix(loss=f"{b.loss:.4f}", refresh=False)
        if b.batch > bar.n:
            bar.update(b.batch - bar.n)

    # -- transfers ------------------------------------------------------------------------------------

    def transfer(self, done: int, total: int, label: str = "upload") -> None:
        """Show ``done`` of ``total`` bytes sent."""
        if not self.enabled:
            return
        if self._tqdm is not None:
            bar = self._open_bar((label,), total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024)
            if done > bar.n:
                bar.update(done - bar.n)
        if done >= total and not self._transfer_done:
            self._transfer_done = True
            self._end_bar()
            self.line(f"{label}: {format_bytes(total)} sent")

    # -- output ---------------------------------------------------------------------------------------

    def _open_bar(self, key: tuple[Any, ...], **options: Any) -> Any:
        """The bar for ``key`` (a new one when the key changed: a new epoch, phase or transfer)."""
        if self._bar is None or key != self._bar_key:
            self._end_bar()
            self._bar = self._tqdm(file=self.stream, leave=False, dynamic_ncols=True, mininterval=self.min_interval,
                                   **options)
            self._bar_key = key
        return self._bar

    def _end_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def line(self, text: str) -> None:
        """Write a whole line (above the bar, if one is drawn)."""
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Remove the bar drawn, if any."""
        self._end_bar()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
