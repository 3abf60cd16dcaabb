"""Training the tabular model on a CSV with a target column (classification or regression)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .embedding_config import TabularConfig
from .embedding_training import predict, rmse, run_embedding_job
from .errors import DatasetError
from .job_setup import Event, log_event
from .tabular_data import fit_schema, read_table
from .tabular_model import TabularModel, embedding_size
from .train_loop import ignore_event, never_stop

TASK = "tabular"


def train_tabular(cfg: TabularConfig, dataset_dir: str | Path, out_dir: str | Path,
                  on_event: Callable[[Event], None] = ignore_event,
                  should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """Fit the tabular model on a seeded random split; the card holds the TabularSchema (vocabularies,
    normalisation, classes). Metrics: accuracy + valid_loss (classification) or rmse + valid_loss (regression)."""
    header, rows = read_table(dataset_dir, cfg.data_file, cfg.separator)
    if cfg.target not in header:
        raise DatasetError(f"target {cfg.target!r} is not a column; columns are {', '.join(header)}")
    t = header.index(cfg.target)
    rows = [row for row in rows if row[t] != ""]
    order = np.random.default_rng(cfg.seed).permutation(len(rows))
    n_valid = max(1, round(len(rows) * cfg.valid_pct))
    if n_valid >= len(rows):
        raise DatasetError(f"{len(rows)} row(s) are too few to hold {cfg.valid_pct:.0%} out for validation")
    train_rows = [rows[i] for i in np.sort(order[: len(rows) - n_valid])]
    valid_rows = [rows[i] for i in np.sort(order[len(rows) - n_valid:])]
    schema = fit_schema(header, train_rows, cfg.target, cfg.categorical, cfg.continuous, cfg.regression)
    sizes = ", ".join(f"{c} {n}->{embedding_size(n)}" for c, n in zip(schema.categorical, schema.cardinalities,
                                                                        strict=True))
    on_event(log_event(
        f"table {dataset_dir}: {len(train_rows)} train / {len(valid_rows)} valid rows; target {cfg.target!r} "
        f"({'regression' if schema.regression else f'{len(schema.classes)} classes'}); embeddings {sizes or 'none'}; "
        f"continuous {', '.join(schema.continuous) or 'none'}; "
        f"is-missing flags {', '.join(schema.missing_flags) or 'none'}"))

    def tensors(part: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        records = [dict(zip(header, row, strict=True)) for row in part]
        return schema.encode(records), schema.encode_target([row[t] for row in part])

    train_x, train_y = tensors(train_rows)
    valid_x, valid_y = tensors(valid_rows)
    loss_fn = (lambda out, y: F.mse_loss(out[:, 0], y)) if schema.regression else F.cross_entropy

    def evaluate(model: nn.Module) -> dict[str, float]:
        out = predict(model, valid_x, next(model.parameters()).device)
        if schema.regression:
            error = rmse(out[:, 0], valid_y)
            return {"rmse": error * schema.target_stats["std"], "valid_loss": error**2}
        known = valid_y >= 0  # a class that only the validation rows hold cannot be predicted
        loss = F.cross_entropy(out[known], valid_y[known]).item() if known.any() else math.nan
        return {"accuracy": (out.argmax(dim=1) == valid_y).float().mean().item(), "valid_loss": loss}

    def prepare(device: torch.device) -> tuple[Any, ...]:
        model = TabularModel(schema.cardinalities, schema.n_continuous, len(schema.classes) or 1, cfg.layers,
                             cfg.dropout, cfg.embedding_dropout)
        card = {"arch": "tabular_mlp", "schema": schema.to_dict(), "classes": schema.classes,
                "layers": list(cfg.layers), "dropout": cfg.dropout, "embedding_dropout": cfg.embedding_dropout,
                "dataset": {"train_rows": len(train_rows), "valid_rows": len(valid_rows)}}
        return model, (train_x, train_y), loss_fn, evaluate, card, {}, [TASK, schema.to_dict()]

    return run_embedding_job(cfg, out_dir, TASK, prepare, on_event, should_stop)
