"""The tabular family's jobs: collaborative filtering on a ratings data set (dot product + biases, or the neural
variant) and the tabular model on a CSV with a target column. Both train from scratch: one stage, one 1cycle of
AdamW over in-memory tensors, on one CPU thread (batches.one_cpu_thread)."""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fineserve_common.configs import CollabConfig, EmbeddingRecipe, Stage, TabularConfig
from fineserve_common.events import Log
from fineserve_common.tasks import COLLABORATIVE_FILTERING, TABULAR_MODEL

from ..errors import DatasetError
from ..job import TaskJob
from ..precision import resolve_device, resolve_precision
from ..schedule import make_optimizer
from ..train_loop import Batches, LoopSettings, OnEvent, ShouldStop, never_stop
from .batches import TensorBatches, one_cpu_thread, predict, rmse
from .collab_models import DotProductBias, build_collab_model
from .data import fit_schema, read_table
from .delimited import IS_VALID, valid_flags
from .model import TabularModel, embedding_size
from .ratings import Ratings, read_ratings, split_ratings

SEEN_PREFIX = "ratings."
"""Tensors saved beside a collab model's weights: every user's rated items (CSR) and each item's rating count and
mean."""
Tensors = tuple[torch.Tensor, torch.Tensor]


class EmbeddingJob(TaskJob):
    """What both tasks share once their tensors are made: the stage, AdamW, the batches, the card's timing."""

    cfg: EmbeddingRecipe
    train_xy: Tensors
    valid_xy: Tensors

    def _open(self, cfg: EmbeddingRecipe, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              on_event: OnEvent) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        on_event(Log(f"device {self.device}, precision {self.precision} (requested {cfg.precision})"))
        self.settings = LoopSettings(self.device, self.precision, loss_fn=loss_fn)

    def stages(self) -> tuple[Stage, ...]:
        return (Stage(self.cfg.epochs, 0, lr=self.cfg.lr),)

    def build(self, on_event: OnEvent) -> nn.Module:
        self.started = time.perf_counter()
        return self.new_model().to(self.device)

    @abstractmethod
    def new_model(self) -> nn.Module:
        """The model, randomly initialised (these tasks have no base weights)."""

    def start_stage(self, model: nn.Module, stage: Stage) -> tuple[nn.Module, torch.optim.Optimizer, list[float]]:
        """One param group, or (decayed, undecayed) where the model keeps its biases from weight decay."""
        if isinstance(model, DotProductBias):
            decayed, undecayed = model.decay_groups()
            opt = make_optimizer([decayed, undecayed], self.cfg)
            opt.param_groups[1]["weight_decay"] = 0.0
        else:
            opt = make_optimizer([model], self.cfg)
        return model, opt, [stage.lr] * len(opt.param_groups)

    def loaders(self, stage: Stage) -> tuple[Batches, Tensors]:
        return TensorBatches(*self.train_xy, self.cfg.batch_size, self.cfg.seed), self.valid_xy

    def epoch_batches(self, train: Batches, epoch: int, model: nn.Module) -> Batches:
        assert isinstance(train, TensorBatches)
        train.epoch = epoch
        return train

    def served_metrics(self, served: Any) -> dict[str, float]:
        """The epoch metrics of the stored model as served on the same encoded validation rows (a replica
        encodes a row by the card's schema or vocabularies, as training encoded the file)."""
        return self.epoch_metrics(served.model, self.valid_xy, never_stop)

    def compute(self) -> AbstractContextManager[None]:
        return one_cpu_thread(self.device)

    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        return {"train_seconds": round(time.perf_counter() - self.started, 3)}


def y_range_for(ratings: np.ndarray) -> tuple[float, float]:
    """fast.ai's trick: a sigmoid never reaches its ends, so the range reaches a little (5% of the rating span)
    past the lowest and the highest rating: 1-5 stars -> (0.8, 5.2)."""
    low, high = float(ratings.min()), float(ratings.max())
    margin = 0.05 * (high - low) or 0.5
    return low - margin, high + margin


def seen_tensors(data: Ratings) -> dict[str, torch.Tensor]:
    """Each user's rated items as CSR (indptr, items), plus per-item rating counts and means (popularity)."""
    order = np.lexsort((data.items, data.users))
    indptr = np.zeros(len(data.user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(data.users, minlength=len(data.user_ids)), out=indptr[1:])
    counts = np.bincount(data.items, minlength=len(data.item_ids))
    sums = np.bincount(data.items, weights=data.ratings, minlength=len(data.item_ids))
    tensors = {"indptr": indptr, "items": data.items[order], "item_counts": counts.astype(np.int64),
               "item_means": (sums / np.maximum(counts, 1)).astype(np.float32)}
    return {f"{SEEN_PREFIX}{name}": torch.from_numpy(array) for name, array in tensors.items()}


class CollabJob(EmbeddingJob):
    """Metrics rmse + valid_loss; the card holds the user and item vocabularies, titles and y_range, and the
    model file the "ratings." tensors a recommender filters and ranks with."""

    task = COLLABORATIVE_FILTERING

    def __init__(self, cfg: CollabConfig, dataset_dir: Path, on_event: OnEvent) -> None:
        self.collab = cfg
        data = self.data = read_ratings(dataset_dir, cfg.ratings)
        self.train_idx, self.valid_idx = split_ratings(data, cfg.valid_pct, cfg.seed, cfg.split == "time")
        self.y_range = tuple(cfg.y_range) if cfg.y_range else y_range_for(data.ratings)
        on_event(Log(f"ratings {dataset_dir}: {len(data)} ratings of {len(data.item_ids)} items by "
                     f"{len(data.user_ids)} users; {len(self.train_idx)} train / {len(self.valid_idx)} valid "
                     f"({'the is_valid column' if data.is_valid is not None else cfg.split} split); "
                     f"{len(data.titles)} titles; y_range {self.y_range}"))
        pairs = torch.from_numpy(np.stack([data.users, data.items], axis=1))
        target = torch.from_numpy(data.ratings)
        self.train_xy = pairs[self.train_idx], target[self.train_idx]
        self.valid_xy = pairs[self.valid_idx], target[self.valid_idx]
        self.fingerprint_of = [self.task, len(data), len(data.user_ids), len(data.item_ids)]
        self._open(cfg, F.mse_loss, on_event)

    def new_model(self) -> nn.Module:
        return build_collab_model(self.collab, len(self.data.user_ids), len(self.data.item_ids), self.y_range)

    def epoch_metrics(self, model: nn.Module, valid: Any, should_stop: ShouldStop) -> dict[str, float]:
        valid_x, valid_y = valid
        error = rmse(predict(model, valid_x, next(model.parameters()).device), valid_y)
        return {"rmse": error, "valid_loss": error**2}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return seen_tensors(self.data)

    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        cfg, data = self.collab, self.data
        return {"arch": cfg.arch, "users": data.user_ids, "items": data.item_ids, "titles": data.titles,
                "y_range": list(self.y_range), "n_factors": cfg.n_factors, "layers": list(cfg.layers),
                "dropout": cfg.dropout, "rating_range": [float(data.ratings.min()), float(data.ratings.max())],
                "dataset": {"ratings": len(data), "users": len(data.user_ids), "items": len(data.item_ids),
                            "train_ratings": len(self.train_idx), "valid_ratings": len(self.valid_idx)},
                **super().card_fields(model, metrics)}


class TabularJob(EmbeddingJob):
    """A seeded random split; the card holds the TabularSchema (vocabularies, normalisation, classes). Metrics:
    accuracy + valid_loss (classification) or rmse + valid_loss (regression)."""

    task = TABULAR_MODEL

    def __init__(self, cfg: TabularConfig, dataset_dir: Path, on_event: OnEvent) -> None:
        self.tabular = cfg
        header, rows = read_table(dataset_dir, cfg.data_file, cfg.separator)
        if cfg.target not in header:
            raise DatasetError(f"target {cfg.target!r} is not a column; columns are {', '.join(header)}")
        t = header.index(cfg.target)
        rows = [row for row in rows if row[t] != ""]
        train_rows, valid_rows = _split_rows(header, rows, cfg.valid_pct, cfg.seed)
        schema = self.schema = fit_schema(header, train_rows, cfg.target, cfg.categorical, cfg.continuous,
                                          cfg.regression)
        sizes = ", ".join(f"{c} {n}->{embedding_size(n)}" for c, n in zip(schema.categorical, schema.cardinalities,
                                                                            strict=True))
        on_event(Log(
            f"table {dataset_dir}: {len(train_rows)} train / {len(valid_rows)} valid rows "
            f"({'the is_valid column' if IS_VALID in header else 'random'} split); target {cfg.target!r} "
            f"({'regression' if schema.regression else f'{len(schema.classes)} classes'}); embeddings "
            f"{sizes or 'none'}; continuous {', '.join(schema.continuous) or 'none'}; "
            f"is-missing flags {', '.join(schema.missing_flags) or 'none'}"))

        def tensors(part: list[list[str]]) -> Tensors:
            records = [dict(zip(header, row, strict=True)) for row in part]
            return schema.encode(records), schema.encode_target([row[t] for row in part])

        self.train_xy, self.valid_xy = tensors(train_rows), tensors(valid_rows)
        self.n_rows = {"train_rows": len(train_rows), "valid_rows": len(valid_rows)}
        self.fingerprint_of = [self.task, schema.to_dict()]
        loss_fn = _regression_loss if schema.regression else F.cross_entropy
        self._open(cfg, loss_fn, on_event)

    def new_model(self) -> nn.Module:
        cfg, schema = self.tabular, self.schema
        return TabularModel(schema.cardinalities, schema.n_continuous, len(schema.classes) or 1, cfg.layers,
                            cfg.dropout, cfg.embedding_dropout)

    def epoch_metrics(self, model: nn.Module, valid: Any, should_stop: ShouldStop) -> dict[str, float]:
        valid_x, valid_y = valid
        out = predict(model, valid_x, next(model.parameters()).device)
        if self.schema.regression:
            error = rmse(out[:, 0], valid_y)
            return {"rmse": error * self.schema.target_stats["std"], "valid_loss": error**2}
        known = valid_y >= 0  # a class that only the validation rows hold cannot be predicted
        loss = F.cross_entropy(out[known], valid_y[known]).item() if known.any() else math.nan
        return {"accuracy": (out.argmax(dim=1) == valid_y).float().mean().item(), "valid_loss": loss}

    def card_fields(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        cfg = self.tabular
        return {"arch": "tabular_mlp", "schema": self.schema.to_dict(), "classes": self.schema.classes,
                "layers": list(cfg.layers), "dropout": cfg.dropout, "embedding_dropout": cfg.embedding_dropout,
                "dataset": self.n_rows, **super().card_fields(model, metrics)}


def _split_rows(header: list[str], rows: list[list[str]], valid_pct: float,
                seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """(train, valid) rows in file order: by the is_valid column when the table has one, else a seeded random
    valid_pct share."""
    if IS_VALID in header:
        parts: dict[bool, list[list[str]]] = {False: [], True: []}
        flags = valid_flags([row[header.index(IS_VALID)] for row in rows], "the table")
        for row, flag in zip(rows, flags.tolist(), strict=True):
            parts[flag].append(row)
        return parts[False], parts[True]
    order = np.random.default_rng(seed).permutation(len(rows))
    n_valid = max(1, round(len(rows) * valid_pct))
    if n_valid >= len(rows):
        raise DatasetError(f"{len(rows)} row(s) are too few to hold {valid_pct:.0%} out for validation")
    return ([rows[i] for i in np.sort(order[: len(rows) - n_valid])],
            [rows[i] for i in np.sort(order[len(rows) - n_valid:])])


def _regression_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out[:, 0], y)
