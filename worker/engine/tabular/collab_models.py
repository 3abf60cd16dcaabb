"""Collaborative-filtering models: user and item embeddings scored into a rating range (fast.ai's y_range).

Both take a (N, 2) long tensor of (user index, item index) and return (N,) ratings; score_users scores every
item for a batch of users at once, which is what top-k recommendation needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fineserve_common.configs import CollabConfig

from .model import embedding_size, mlp


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Squash into (low, high): a y_range a little wider than the ratings lets the sigmoid reach the extremes."""
    return torch.sigmoid(x) * (high - low) + low


def _embedding(n: int, dim: int) -> nn.Embedding:
    embedding = nn.Embedding(n, dim)
    nn.init.trunc_normal_(embedding.weight, std=0.01, a=-0.02, b=0.02)  # fast.ai's small initial embeddings
    return embedding


class DotProductBias(nn.Module):
    """rating = sigmoid_range(user . item + user_bias + item_bias)."""

    arch = "dot"

    def __init__(self, n_users: int, n_items: int, n_factors: int, y_range: tuple[float, float]) -> None:
        super().__init__()
        self.y_range = y_range
        self.user_factors = _embedding(n_users, n_factors)
        self.item_factors = _embedding(n_items, n_factors)
        self.user_bias = _embedding(n_users, 1)
        self.item_bias = _embedding(n_items, 1)

    def decay_groups(self) -> tuple[nn.ModuleList, nn.ModuleList]:
        """(weight-decayed, not decayed): biases are left undecayed, as fast.ai leaves biases (wd_bn_bias=False);
        on MovieLens-100k that is worth about 0.005 of validation RMSE."""
        return (nn.ModuleList([self.user_factors, self.item_factors]),
                nn.ModuleList([self.user_bias, self.item_bias]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, i = x[:, 0], x[:, 1]
        dot = (self.user_factors(u) * self.item_factors(i)).sum(dim=1)
        return sigmoid_range(dot + self.user_bias(u)[:, 0] + self.item_bias(i)[:, 0], *self.y_range)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """(U, n_items) predicted ratings: one matrix product over every item."""
        raw = self.user_factors(users) @ self.item_factors.weight.T + self.user_bias(users) + self.item_bias.weight.T
        return sigmoid_range(raw, *self.y_range)

    def item_vectors(self) -> torch.Tensor:
        return self.item_factors.weight

    def item_biases(self) -> torch.Tensor | None:
        return self.item_bias.weight[:, 0]


class NeuralCollab(nn.Module):
    """rating = sigmoid_range(MLP([user embedding, item embedding])); sizes by the tabular rule of thumb."""

    arch = "neural"

    def __init__(self, n_users: int, n_items: int, layers: Sequence[int], dropout: float,
                 y_range: tuple[float, float]) -> None:
        super().__init__()
        self.y_range = y_range
        self.user_factors = _embedding(n_users, embedding_size(n_users))
        self.item_factors = _embedding(n_items, embedding_size(n_items))
        n_in = self.user_factors.embedding_dim + self.item_factors.embedding_dim
        self.layers, width = mlp(n_in, layers, dropout, batch_norm=False)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.user_factors(x[:, 0]), self.item_factors(x[:, 1])], dim=1)
        return sigmoid_range(self.out(self.layers(features))[:, 0], *self.y_range)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """(U, n_items): every (user, item) pair through the MLP in one batch."""
        n_items = self.item_factors.num_embeddings
        items = torch.arange(n_items, device=users.device)
        pairs = torch.stack([users.repeat_interleave(n_items), items.repeat(len(users))], dim=1)
        return self(pairs).view(len(users), n_items)

    def item_vectors(self) -> torch.Tensor:
        return self.item_factors.weight

    def item_biases(self) -> torch.Tensor | None:
        return None


def build_collab_model(cfg: CollabConfig, n_users: int, n_items: int, y_range: tuple[float, ...]) -> nn.Module:
    """The model cfg.arch names, randomly initialised: for a job to train and for a recommender to load into."""
    low, high = y_range
    if cfg.arch == "dot":
        return DotProductBias(n_users, n_items, cfg.n_factors, (low, high))
    return NeuralCollab(n_users, n_items, cfg.layers, cfg.dropout, (low, high))
