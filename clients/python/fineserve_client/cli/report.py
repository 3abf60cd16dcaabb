"""The report command: a finished image job's interpretation as tables, and its plots as PNGs with --out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..report import Interpretation, interpretation_of, plot_confusion_matrix, plot_top_losses
from .output import AddCommand, print_json, table

if TYPE_CHECKING:
    from ..client import Client


def _tables(found: Interpretation) -> str:
    """Per-class numbers, then (classification) the matrix, the most confused pairs and the top losses."""
    multi = found.task == "multi_label_classification"
    seg = found.task == "segmentation"
    head = ["CLASS", "PRECISION", "RECALL", f"F{found.beta:g}" if multi else "F1", "SUPPORT"]
    head += ["THRESHOLD"] if multi else ["IOU"] if seg else []
    rows = [[m.name, f"{m.precision:.3f}", f"{m.recall:.3f}", f"{m.f_score:.3f}", m.support]
            + ([f"{m.threshold:.2f}"] if multi else [f"{m.iou:.3f}"] if seg else []) for m in found.per_class]
    parts = [f"{found.task}: {found.items} validation images, measured at {found.precision}", table(head, rows)]
    if found.confusion and not seg:
        parts += ["confusion matrix (rows actual, columns predicted):",
                  table(["", *found.classes], [[name, *row] for name, row in zip(found.classes, found.confusion,
                                                                                   strict=True)])]
    if found.most_confused:
        parts += ["most confused:", table(["ACTUAL", "PREDICTED", "COUNT"],
                                          [[p.actual, p.predicted, p.count] for p in found.most_confused])]
    if found.top_losses:
        parts += ["top losses:", table(["ITEM", "ACTUAL", "PREDICTED", "LOSS", "PROBABILITY"],
                                       [[t.item, t.actual, t.predicted, f"{t.loss:.3f}", f"{t.probability:.3f}"]
                                        for t in found.top_losses])]
    return "\n\n".join(parts)


def _report(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    job = c.get_job(a.job)
    found = interpretation_of(job)
    if a.json:
        print_json(getattr(job, "raw", job).result.interpretation, out)
    else:
        out.write(_tables(found) + "\n")
    if a.out:
        folder = Path(a.out)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        if found.confusion:
            plot_confusion_matrix(job, folder / "confusion_matrix.png")
            written.append(folder / "confusion_matrix.png")
        if found.top_losses and a.data:
            plot_top_losses(job, a.data, folder / "top_losses.png", k=a.k)
            written.append(folder / "top_losses.png")
        if found.top_losses and not a.data:
            out.write("top losses not plotted: pass --data FOLDER (the data set's local copy) to draw the images\n")
        out.write("".join(f"wrote {path}\n" for path in written))
    return 0


def add_commands(command: AddCommand) -> None:
    p = command("report", _report, "a finished image job's interpretation: per-class metrics, confusion matrix, "
                "most confused pairs, top losses; plots with --out")
    p.add_argument("job", help="job id")
    p.add_argument("--out", metavar="DIR", help="write confusion_matrix.png (and top_losses.png with --data) there")
    p.add_argument("--data", metavar="FOLDER",
                   help="the data set's local folder, to draw the top losses' images (the service sends none)")
    p.add_argument("-k", type=int, default=9, help="top losses to plot (at most 16; default 9)")
