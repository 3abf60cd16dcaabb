"""Training a collaborative-filtering model on a ratings data set (dot product + biases, or the neural variant)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .collab_models import DotProductBias, NeuralCollab
from .embedding_config import CollabConfig
from .embedding_training import predict, rmse, run_embedding_job
from .job_setup import Event, log_event
from .ratings_data import Ratings, read_ratings, split_ratings
from .train_loop import ignore_event, never_stop

TASK = "collaborative_filtering"
SEEN_PREFIX = "ratings."
"""Tensors saved beside the weights: every user's rated items (CSR) and each item's rating count and mean."""


def y_range_for(ratings: np.ndarray) -> tuple[float, float]:
    """fast.ai's trick: a sigmoid never reaches its ends, so the range reaches a little (5% of the rating span)
    past the lowest and the highest rating: 1-5 stars -> (0.8, 5.2)."""
    low, high = float(ratings.min()), float(ratings.max())
    margin = 0.05 * (high - low) or 0.5
    return low - margin, high + margin


def build_collab_model(cfg: CollabConfig, n_users: int, n_items: int, y_range: tuple[float, float]) -> nn.Module:
    if cfg.arch == "dot":
        return DotProductBias(n_users, n_items, cfg.n_factors, y_range)
    return NeuralCollab(n_users, n_items, cfg.layers, cfg.dropout, y_range)


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


def train_collab(cfg: CollabConfig, dataset_dir: str | Path, out_dir: str | Path,
                 on_event: Callable[[Event], None] = ignore_event,
                 should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    """Fit cfg.arch on the ratings; writes model.safetensors (weights + the "ratings." tensors) and card.json
    (user and item vocabularies, titles, y_range). Returns {"metrics": {rmse, valid_loss, train_loss}, "card",
    "epochs_trained"}. Raises DatasetError for unreadable ratings, Cancelled when should_stop() says so."""
    data = read_ratings(dataset_dir, cfg.ratings)
    train_idx, valid_idx = split_ratings(data, cfg.valid_pct, cfg.seed, cfg.split == "time")
    y_range = tuple(cfg.y_range) if cfg.y_range else y_range_for(data.ratings)
    on_event(log_event(f"ratings {dataset_dir}: {len(data)} ratings of {len(data.item_ids)} items by "
                       f"{len(data.user_ids)} users; {len(train_idx)} train / {len(valid_idx)} valid ({cfg.split} "
                       f"split); {len(data.titles)} titles; y_range {y_range}"))
    pairs = torch.from_numpy(np.stack([data.users, data.items], axis=1))
    target = torch.from_numpy(data.ratings)
    valid_x, valid_y = pairs[valid_idx], target[valid_idx]

    def evaluate(model: nn.Module) -> dict[str, float]:
        error = rmse(predict(model, valid_x, next(model.parameters()).device), valid_y)
        return {"rmse": error, "valid_loss": error**2}

    def prepare(device: torch.device) -> tuple[Any, ...]:
        model = build_collab_model(cfg, len(data.user_ids), len(data.item_ids), y_range)
        card = {"arch": cfg.arch, "users": data.user_ids, "items": data.item_ids, "titles": data.titles,
                "y_range": list(y_range), "n_factors": cfg.n_factors, "layers": list(cfg.layers),
                "dropout": cfg.dropout, "rating_range": [float(data.ratings.min()), float(data.ratings.max())],
                "dataset": {"ratings": len(data), "users": len(data.user_ids), "items": len(data.item_ids),
                            "train_ratings": len(train_idx), "valid_ratings": len(valid_idx)}}
        fingerprint = [TASK, len(data), len(data.user_ids), len(data.item_ids)]
        return (model, (pairs[train_idx], target[train_idx]), F.mse_loss, evaluate, card, seen_tensors(data),
                fingerprint)

    return run_embedding_job(cfg, out_dir, TASK, prepare, on_event, should_stop)
