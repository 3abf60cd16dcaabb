"""The inference commands: classify, score-labels, explain, segment, recommend, predict-tabular, predict-text.
Each takes the model as ``NAME[/VERSION]``, which the SDK's methods accept as it is."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..interpretation import overlay_path
from ..results import Classification
from .choices import UsageError
from .output import AddCommand, Handler, key_values, print_json, write_atomically, write_table

if TYPE_CHECKING:
    from ..client import Client


def _print_classifications(results: list[Classification], a: argparse.Namespace, out: TextIO) -> int:
    if a.json:
        print_json([{"file": r.name, "model": r.model, "top": [{"label": lb, "probability": p} for lb, p in r.top]}
                    for r in results], out)
        return 0
    rows = [(r.name, r.label or "-", f"{r.probability:.4f}" if r.probability is not None else "-",
             ", ".join(f"{lb} {p:.4f}" for lb, p in r.top[1:]) or "-") for r in results]
    return write_table(out, ["FILE", "LABEL", "PROBABILITY", "OTHERS"], rows)


def _classify(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    return _print_classifications(c.classify(a.model, a.files, top_k=a.top_k), a, out)


def _predict_text(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    texts = list(a.texts) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    return _print_classifications(c.predict_text(a.model, texts, top_k=a.top_k), a, out)


def _score_labels(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    results = c.score_labels(a.model, a.files, threshold=a.threshold)
    if a.json:
        print_json([{"file": r.name, "model": r.model, "scores": r.scores, "predicted": r.predicted}
                    for r in results], out)
        return 0
    rows = [(r.name, ", ".join(r.predicted) or "-", ", ".join(f"{lb} {p:.3f}" for lb, p in r.scores.items()))
            for r in results]
    return write_table(out, ["FILE", "PREDICTED", "SCORES"], rows)


def _overlay_paths(files: list[str], folder: str | None, targets: list[str]) -> list[Path]:
    """Where each input's overlay goes: next to it, named by target (photo.jpg -> photo.dog.gradcam.png), or into
    ``folder``; two inputs that would share one overlay file are refused before the call."""
    paths = [overlay_path(f, t) if folder is None else Path(folder) / overlay_path(f, t).name
             for f, t in zip(files, targets, strict=True)]
    seen: dict[Path, str] = {}
    for file, path in zip(files, paths, strict=True):
        if path in seen:
            raise UsageError(f"{seen[path]} and {file} would both write {path}; explain them one at a time or "
                             "with different --out folders")
        seen[path] = file
    return paths


def _explain(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    """Writes each input's overlay next to it, or into --out."""
    _overlay_paths(a.files, a.out, [a.class_name or ""] * len(a.files))  # a clash refused before the call
    results = c.explain(a.model, a.files, target=a.class_name or "")
    paths = _overlay_paths(a.files, a.out, [r.target for r in results])
    if a.out is not None:
        Path(a.out).mkdir(parents=True, exist_ok=True)
    for heatmap, path in zip(results, paths, strict=True):
        write_atomically(path, heatmap.overlay_png)
    rows = [(r.name, r.target, str(p)) for r, p in zip(results, paths, strict=True)]
    if a.json:
        print_json([{"file": f, "target": t, "overlay": o, "grid": r.grid}
                    for (f, t, o), r in zip(rows, results, strict=True)], out)
        return 0
    return write_table(out, ["FILE", "TARGET", "OVERLAY"], rows)


def _segment(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    results = c.segment(a.model, a.files, save_to=a.out)
    if a.json:
        print_json([{"file": r.name, "model": r.model, "width": r.width, "height": r.height, "shares": r.shares}
                    for r in results], out)
        return 0
    rows = [(r.name, f"{r.width}x{r.height}", ", ".join(f"{lb} {s:.1%}" for lb, s in r.top(a.top)))
            for r in results]
    write_table(out, ["FILE", "SIZE", "LARGEST CLASSES"], rows)
    out.write(f"masks and overlays in {a.out}\n")
    return 0


def _recommend(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    pairs = [tuple(p.split(":", 1)) for p in a.pair or ()]
    if any(len(p) != 2 for p in pairs):
        raise ValueError("--pair must be USER:ITEM")
    users = a.users.split(",") if a.users else None
    rec = c.recommend(a.model, a.user, users=users, similar_to=a.similar_to, pairs=pairs or None,
                      top_by_bias=a.top_by_bias, k=a.k, popularity_fallback=a.fallback)
    if a.json:
        print_json(dataclasses.asdict(rec), out)
        return 0
    if pairs:
        write_table(out, ["USER", "ITEM", "RATING"],
                    [(u, i, f"{r:.3f}") for (u, i), r in zip(pairs, rec.ratings, strict=True)])
    else:
        per_user = rec.users.items() if users else [("", rec)]
        rows = [(user, n, item.item_id, f"{item.score:.4f}", item.title or "-")
                for user, r in per_user for n, item in enumerate(r.items, 1)]
        write_table(out, ["USER", "RANK", "ITEM", "SCORE", "TITLE"], rows)
    if rec.fallback:
        out.write("(unknown id: the popularity fallback answered)\n")
    return 0


def _predict_tabular(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    rows: list[dict[str, str]] = [key_values(row.split(","), "--row") for row in a.row or ()]
    if a.csv:
        with open(a.csv, newline="", encoding="utf-8") as f:
            rows += [dict(r) for r in csv.DictReader(f)]
    if not rows:
        raise ValueError("give rows with --row KEY=VALUE,KEY=VALUE or --csv FILE")
    results = c.predict_tabular(a.model, rows, top_k=a.top_k)
    if a.json:
        print_json([dataclasses.asdict(r) for r in results], out)
        return 0
    return write_table(out, ["ROW", "PREDICTION", "PROBABILITIES"], [
        (n, r.label if r.top else f"{r.value:.4f}", ", ".join(f"{lb} {p:.4f}" for lb, p in r.top) or "-")
        for n, r in enumerate(results)])


def add_commands(command: AddCommand) -> None:
    def model_command(name: str, handler: Handler, help: str, files: bool = False) -> argparse.ArgumentParser:
        p = command(name, handler, help)
        p.add_argument("model", metavar="MODEL[/VERSION]")
        if files:
            p.add_argument("files", metavar="FILE", nargs="+")
        return p

    p = model_command("classify", _classify, "classify image files", files=True)
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")

    p = model_command("score-labels", _score_labels, "score every label of a multi-label model for image files",
                      files=True)
    p.add_argument("--threshold", type=float, help="one threshold for every label (default: the tuned ones)")

    p = model_command("explain", _explain, "Grad-CAM heatmaps: each FILE's overlay as NAME.TARGET.gradcam.png",
                      files=True)
    p.add_argument("--out", metavar="DIR", help="folder for the overlays (default: next to each FILE)")
    p.add_argument("--class", dest="class_name", metavar="NAME",
                   help="class or label to explain (default: each image's top prediction)")

    p = model_command("segment", _segment, "segment image files: masks and colour overlays to --out", files=True)
    p.add_argument("--out", default="segments",
                   help="folder for NAME.mask.png and NAME.overlay.png (default: segments)")
    p.add_argument("--top", type=int, default=3, help="classes listed per image (default: 3)")

    p = model_command("recommend", _recommend, "recommendations from a collaborative-filtering model")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--user", help="top-k items this user has not rated")
    query.add_argument("--users", metavar="U1,U2,...", help="top-k items for each of these users (one call)")
    query.add_argument("--similar-to", metavar="ITEM", help="the k items most similar to this one")
    query.add_argument("--pair", action="append", metavar="USER:ITEM", help="predicted rating (repeatable)")
    query.add_argument("--top-by-bias", action="store_true", help="the k items with the highest learnt bias")
    p.add_argument("-k", type=int, default=10, help="items to return (default: 10)")
    p.add_argument("--fallback", action="store_true", help="popular items for unknown ids instead of NOT_FOUND")

    p = model_command("predict-tabular", _predict_tabular, "predict table rows with a tabular model")
    p.add_argument("--row", action="append", metavar="KEY=VALUE,...", help="one row (repeatable)")
    p.add_argument("--csv", metavar="FILE", help="rows from a CSV file with a header")
    p.add_argument("--top-k", type=int, default=5, help="classes per row (default: 5)")

    p = model_command("predict-text", _predict_text, "classify texts with a ULMFiT text classifier")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify (none: one per line on stdin)")
    p.add_argument("--top-k", type=int, default=0, help="labels per text (default: all)")
