"""Validates COLLABORATIVE_FILTERING and TABULAR job requests into the worker's embedding-task spec.

These models train from scratch with one 1cycle, so the image-only knobs (freeze_epochs, image_size, stages,
group_lrs, mixup, ...) are refused rather than silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control.store import Store
from fineserve.v1 import datasets_pb2, training_pb2
from service.errors import invalid
from service.job_dataset import check_common, in_ranges, job_dataset

TASKS = {training_pb2.COLLABORATIVE_FILTERING: ("collaborative_filtering", datasets_pb2.RATINGS_CSV, ("dot", "neural")),
         training_pb2.TABULAR: ("tabular", datasets_pb2.TABULAR_CSV, ("tabular_mlp",))}
# The Hyperparameters these tasks use (ranges: service.job_spec.RANGES); others must be left unset.
USED = ("epochs", "lr", "weight_decay", "pct_start", "batch_size", "valid_pct", "seed", "div_factor",
        "final_div_factor", "moms_max", "moms_min")
UNUSED = ("freeze_epochs", "lr_mult", "image_size", "flip", "label_smoothing", "mixup_alpha", "grad_clip")
SPLITS = ("random", "time")
MAX_LAYERS, MAX_WIDTH = 8, 4096


def embedding_spec(req: training_pb2.CreateFineTuneJobRequest, store: Store, ranges: dict[str, tuple[float, float]],
                   precisions: dict[int, str], out_dir: Path) -> dict[str, Any]:
    task, layout, archs = TASKS[req.task]
    arch = req.arch or archs[0]
    if arch not in archs:
        raise invalid(f"arch {arch!r} is not one of {', '.join(archs)} for {training_pb2.Task.Name(req.task)}")
    if req.base.WhichOneof("source") not in (None, "random_init"):
        raise invalid(f"{training_pb2.Task.Name(req.task)} models train from scratch: leave base unset")
    check_common(req)
    _, dataset_path = job_dataset(req, store, layout)
    cfg = _recipe(req.hyperparameters, ranges, precisions)
    root = Path(dataset_path)
    if task == "collaborative_filtering":
        cfg.update(_collab(req.collab, root), arch=arch)
    else:
        cfg.update(_tabular(req.tabular, root))
    if req.resources.cpu_only:
        cfg["device"] = "cpu"
    return {"embedding_task": task, "config": cfg, "dataset_dir": dataset_path, "out_dir": str(out_dir)}


def _recipe(hp: training_pb2.Hyperparameters, ranges: dict[str, tuple[float, float]],
            precisions: dict[int, str]) -> dict[str, Any]:
    refused = [n for n in UNUSED if hp.HasField(n)] + [n for n in ("group_lrs", "stages") if getattr(hp, n)]
    if hp.early_stopping.metric or hp.auto_lr:
        refused.append("early_stopping" if hp.early_stopping.metric else "auto_lr")
    if refused:
        raise invalid(f"hyperparameters {', '.join(refused)} do not apply to embedding models (they use "
                      f"{', '.join(USED)}, precision)")
    cfg = in_ranges(hp, ranges, "hyperparameters", USED)
    if cfg.get("epochs", 1) < 1:
        raise invalid("hyperparameters.epochs must be >= 1")
    if cfg.get("moms_min", 0.85) > cfg.get("moms_max", 0.95):
        raise invalid("hyperparameters.moms_min must not exceed moms_max")
    if hp.precision != training_pb2.PRECISION_AUTO:
        cfg["precision"] = precisions[hp.precision]
    return cfg


def _file(root: Path, name: str, field: str) -> str:
    if name:
        path = (root / name).resolve()
        if root.resolve() not in path.parents or not path.is_file():
            raise invalid(f"{field} {name!r} is not a file inside the dataset")
    return name


def _separator(value: str, field: str) -> str:
    if len(value) > 1:
        raise invalid(f"{field} must be one character (or empty to sniff it), got {value!r}")
    return value


def _layers(layers: Any, field: str) -> list[int]:
    if len(layers) > MAX_LAYERS or not all(1 <= w <= MAX_WIDTH for w in layers):
        raise invalid(f"{field} takes at most {MAX_LAYERS} widths in [1, {MAX_WIDTH}]")
    return list(layers)


def _collab(o: training_pb2.CollabOptions, root: Path) -> dict[str, Any]:
    ratings = {"ratings_file": _file(root, o.ratings_file, "collab.ratings_file"),
               "separator": _separator(o.separator, "collab.separator"),
               "user_column": o.user_column, "item_column": o.item_column, "rating_column": o.rating_column,
               "timestamp_column": o.timestamp_column, "items_file": _file(root, o.items_file, "collab.items_file"),
               "items_separator": _separator(o.items_separator, "collab.items_separator"),
               "item_id_column": o.item_id_column, "title_column": o.title_column}
    cfg: dict[str, Any] = {"ratings": ratings}
    if o.n_factors:
        if not 1 <= o.n_factors <= 1024:
            raise invalid("collab.n_factors must be in [1, 1024] (0 = 50)")
        cfg["n_factors"] = o.n_factors
    if o.y_range:
        if len(o.y_range) != 2 or not o.y_range[0] < o.y_range[1]:
            raise invalid("collab.y_range must be [low, high] with low < high")
        cfg["y_range"] = list(o.y_range)
    if o.split:
        if o.split not in SPLITS:
            raise invalid(f"collab.split must be one of {', '.join(SPLITS)}")
        cfg["split"] = o.split
    if o.layers:
        cfg["layers"] = _layers(o.layers, "collab.layers")
    return cfg


def _tabular(o: training_pb2.TabularOptions, root: Path) -> dict[str, Any]:
    if not o.target:
        raise invalid("tabular.target is required: the column to predict")
    columns = [o.target, *o.categorical, *o.continuous]
    if len(set(columns)) != len(columns):
        raise invalid("tabular: a column may be only one of target, categorical and continuous")
    cfg: dict[str, Any] = {"target": o.target, "categorical": list(o.categorical), "continuous": list(o.continuous),
                           "data_file": _file(root, o.data_file, "tabular.data_file"),
                           "separator": _separator(o.separator, "tabular.separator")}
    if o.HasField("regression"):
        cfg["regression"] = o.regression
    if o.layers:
        cfg["layers"] = _layers(o.layers, "tabular.layers")
    if o.HasField("dropout"):
        if not 0 <= o.dropout < 1:
            raise invalid("tabular.dropout must be in [0, 1)")
        cfg["dropout"] = o.dropout
    return cfg
