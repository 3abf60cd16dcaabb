"""Serving a tabular model: rows as key-value maps in, class probabilities or a number out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fineserve_common.tasks import TABULAR_MODEL as TASK

from ..model_card import load_weights_into, read_model_card, read_weights
from ..precision import resolve_device
from ..vision.classifier import top_classes
from .data import TabularSchema, check_row_keys
from .model import TabularModel


class TabularPredictor:
    def __init__(self, model: TabularModel, card: dict[str, Any], device: torch.device) -> None:
        self.model = model.eval()
        self.card = card
        self.schema = TabularSchema.from_dict(card["schema"])
        self.device = device

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> TabularPredictor:
        card = read_model_card(model_dir, TASK)
        schema = TabularSchema.from_dict(card["schema"])
        model = TabularModel(schema.cardinalities, schema.n_continuous, len(schema.classes) or 1, card["layers"],
                             card["dropout"], card["embedding_dropout"])
        load_weights_into(model, read_weights(model_dir), model_dir)
        torch_device = resolve_device(device)
        return cls(model.to(torch_device), card, torch_device)

    def predict(self, rows: Sequence[Mapping[str, str]], top_k: int = 5) -> list[dict[str, Any]]:
        """Per row {"top": [(class, probability), ...]} (classification) or {"value": float} (regression).
        Unseen categories use the "unknown" embedding; missing values are filled; unknown keys raise InvalidRow."""
        check_row_keys(self.schema, rows)
        if not rows:
            return []
        x = self.schema.encode(rows).to(self.device)
        with torch.inference_mode():
            out = self.model(x).float().cpu()
        if self.schema.regression:
            stats = self.schema.target_stats
            return [{"value": v * stats["std"] + stats["mean"]} for v in out[:, 0].tolist()]
        return [{"top": top} for top in top_classes(out.softmax(dim=1), self.schema.classes, max(top_k, 1))]
