"""Plots a person would rather look at: the LR range test curve and a job's training curves.

matplotlib is imported only here and only when a plot is asked for (`pip install fineserve-client[plot]`),
so the SDK itself keeps to grpcio + protobuf.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from fineserve.v1 import training_pb2


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install 'fineserve-client[plot]'") from e
    return plt


def plot_lr_finder(result: training_pb2.LrFinderResult | training_pb2.Job, path: str | os.PathLike[str]) -> None:
    """Loss against learning rate (log scale) with each suggestion marked, saved as a PNG."""
    finder = result.result.lr_finder if isinstance(result, training_pb2.Job) else result
    if not finder.points:
        raise ValueError("the LR finder result has no points (did the job succeed?)")
    plt = _pyplot()
    lrs = [p.lr for p in finder.points]
    losses = [p.loss for p in finder.points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses, color="tab:blue", label="smoothed loss")
    markers = {"valley": ("o", "tab:green"), "steepest": ("^", "tab:orange"), "minimum_div_10": ("s", "tab:red")}
    for name, lr in sorted(finder.suggestions.items()):
        marker, color = markers.get(name, ("x", "black"))
        nearest = min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr))
        ax.scatter([lr], [losses[nearest]], marker=marker, color=color, s=60, zorder=3, label=f"{name}: {lr:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("LR range test" + (" (stopped: loss diverged)" if finder.diverged else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training(events: Iterable[training_pb2.JobEvent], path: str | os.PathLike[str]) -> None:
    """Per-batch learning rate and momentum, and per-epoch losses and accuracy, from a job's events."""
    events = list(events)
    batches = [e.batch for e in events if e.WhichOneof("event") == "batch"]
    epochs = [e.epoch for e in events if e.WhichOneof("event") == "epoch"]
    if not batches:
        raise ValueError("no batch events to plot")
    plt = _pyplot()
    x = [b.epoch - 1 + b.batch / max(b.batches, 1) for b in batches]
    fig, (ax_lr, ax_mom, ax_loss) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    ax_lr.plot(x, [b.lr for b in batches], label="head group")
    groups = max((len(b.group_lrs) for b in batches), default=0)
    for g in range(groups - 1):
        ax_lr.plot(x, [b.group_lrs[g] if len(b.group_lrs) > g else float("nan") for b in batches],
                   label=f"group {g}", alpha=0.7)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_yscale("log")
    ax_lr.legend()
    ax_mom.plot(x, [b.momentum for b in batches], color="tab:purple")
    ax_mom.set_ylabel("momentum (beta1)")
    ax_loss.plot(x, [b.loss for b in batches], color="tab:gray", alpha=0.6, label="batch loss")
    if epochs:
        ex = [e.epoch for e in epochs]
        for key, color in (("train_loss", "tab:blue"), ("valid_loss", "tab:orange"), ("accuracy", "tab:green")):
            ys = [e.metrics[key] for e in epochs if key in e.metrics]
            if len(ys) == len(ex):
                ax_loss.plot(ex, ys, marker="o", color=color, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
