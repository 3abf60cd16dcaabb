"""Serving a collaborative-filtering model: top-k unrated items, similar items, pair predictions, item biases.

Every query is a few tensor operations over all items (no per-item Python loop), batched over users.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fineserve_common.configs import CollabConfig
from fineserve_common.tasks import COLLABORATIVE_FILTERING as TASK

from ..errors import EngineError
from ..model_card import load_weights_into, read_model_card, read_weights
from ..precision import resolve_device
from .collab_models import build_collab_model
from .family import SEEN_PREFIX


class UnknownId(EngineError):
    """A user or item the model never saw (and no popularity fallback was asked for)."""

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"{kind} {value!r} is not in the model's training data "
                         "(ask for popularity_fallback to get popular items instead)")
        self.kind = kind
        self.value = value


@dataclass(frozen=True)
class Recommendation:
    items: list[tuple[str, float]]
    """(item id, score) best first."""
    fallback: bool = False
    """True when the user or item was unknown and popular items answered."""


class Recommender:
    def __init__(self, model: nn.Module, card: dict[str, Any], seen: dict[str, torch.Tensor],
                 device: torch.device) -> None:
        self.model = model.eval()
        self.card = card
        self.device = device
        self.user_ids: list[str] = card["users"]
        self.item_ids: list[str] = card["items"]
        self.titles: dict[str, str] = card.get("titles", {})
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {u: i for i, u in enumerate(self.item_ids)}
        self.indptr, self.seen_items = seen["indptr"], seen["items"].to(device)
        self.item_counts, self.item_means = seen["item_counts"], seen["item_means"]
        self.global_mean = float((self.item_means * self.item_counts).sum() / self.item_counts.sum())
        self.popular_order = torch.argsort(self.item_counts, descending=True, stable=True)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> Recommender:
        card = read_model_card(model_dir, TASK)
        cfg = CollabConfig.from_dict(card["hyperparameters"])
        model = build_collab_model(cfg, len(card["users"]), len(card["items"]), tuple(card["y_range"]))
        tensors = read_weights(model_dir)
        seen = {k.removeprefix(SEEN_PREFIX): tensors.pop(k) for k in list(tensors) if k.startswith(SEEN_PREFIX)}
        load_weights_into(model, tensors, model_dir)
        torch_device = resolve_device(device)
        return cls(model.to(torch_device), card, seen, torch_device)

    def title(self, item_id: str) -> str:
        return self.titles.get(item_id, "")

    def popular(self, k: int) -> list[tuple[str, float]]:
        """The k most-rated items with their mean rating: the answer for someone we know nothing about."""
        return [(self.item_ids[i], float(self.item_means[i])) for i in self.popular_order[:k].tolist()]

    def recommend(self, user_ids: list[str], k: int, fallback: bool = False) -> list[Recommendation]:
        """Per user, the k items they have not rated with the highest predicted rating (one matrix product for
        the whole batch; rated items are masked out before top-k)."""
        known = [(pos, self.user_index[u]) for pos, u in enumerate(user_ids) if u in self.user_index]
        if not fallback and len(known) < len(user_ids):
            raise UnknownId("user", next(u for u in user_ids if u not in self.user_index))
        answers = [Recommendation(self.popular(k), fallback=True) for _ in user_ids]
        if not known:
            return answers
        users = torch.tensor([u for _, u in known], device=self.device)
        with torch.inference_mode():
            scores = self.model.score_users(users).float()
            scores[self._seen_mask(users)] = -torch.inf
            values, indices = scores.topk(min(k, len(self.item_ids)), dim=1)
        for (pos, _), row_v, row_i in zip(known, values.tolist(), indices.tolist(), strict=True):
            answers[pos] = Recommendation([(self.item_ids[i], v) for v, i in zip(row_v, row_i, strict=True)
                                           if v != -torch.inf])
        return answers

    def _seen_mask(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) index pairs of every rated item of the batch's users, gathered from the CSR arrays."""
        users = users.cpu()
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        rows = torch.repeat_interleave(torch.arange(len(users)), lengths)
        firsts = torch.cumsum(lengths, 0) - lengths  # where each user's run starts in the gathered list
        offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(firsts, lengths)
        cols = self.seen_items[(torch.repeat_interleave(starts, lengths) + offsets).to(self.device)]
        return rows.to(self.device), cols

    def similar(self, item_id: str, k: int, fallback: bool = False) -> Recommendation:
        """The k items whose embeddings have the highest cosine similarity with item_id's."""
        if item_id not in self.item_index:
            if fallback:
                return Recommendation(self.popular(k), fallback=True)
            raise UnknownId("item", item_id)
        i = self.item_index[item_id]
        with torch.inference_mode():
            vectors = F.normalize(self.model.item_vectors().float(), dim=1)
            cosine = vectors @ vectors[i]
            cosine[i] = -torch.inf
            values, indices = cosine.topk(min(k, len(self.item_ids) - 1))
        return Recommendation([(self.item_ids[j], v) for v, j in zip(values.tolist(), indices.tolist(), strict=True)])

    def predict_pairs(self, pairs: list[tuple[str, str]], fallback: bool = False) -> tuple[list[float], bool]:
        """Predicted ratings in order, all known pairs in one forward pass. With fallback, a pair with an unknown
        user gets the item's mean rating (the global mean for an unknown item); returns (ratings, any fallback)."""
        known = [(n, self.user_index.get(u), self.item_index.get(i)) for n, (u, i) in enumerate(pairs)]
        if not fallback:
            for u, i in pairs:
                if u not in self.user_index:
                    raise UnknownId("user", u)
                if i not in self.item_index:
                    raise UnknownId("item", i)
        ratings = [self.global_mean if i is None else float(self.item_means[i]) for _, _, i in known]
        scored = [(n, u, i) for n, u, i in known if u is not None and i is not None]
        if scored:
            x = torch.tensor([[u, i] for _, u, i in scored], device=self.device)
            with torch.inference_mode():
                out = self.model(x).float().tolist()
            for (n, _, _), rating in zip(scored, out, strict=True):
                ratings[n] = rating
        return ratings, len(scored) < len(pairs)

    def top_by_bias(self, k: int) -> list[tuple[str, float]]:
        """Items with the highest learnt bias: liked whatever the user's taste (dot-product models only)."""
        biases = self.model.item_biases()
        if biases is None:
            raise EngineError(f"a {self.card['arch']} model has no item biases; top_by_bias needs a dot model")
        values, indices = biases.detach().float().topk(min(k, len(self.item_ids)))
        return [(self.item_ids[i], v) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
