"""fast.ai's tabular model: an embedding per categorical column, batch-normed continuous columns, an MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def embedding_size(n_categories: int) -> int:
    """fast.ai's rule of thumb: min(600, round(1.6 * n**0.56)) dimensions for a vocabulary of n (unknown included)."""
    return min(600, round(1.6 * n_categories**0.56))


def mlp(n_in: int, layers: Sequence[int], dropout: float, batch_norm: bool) -> tuple[nn.Sequential, int]:
    """Linear -> ReLU [-> BatchNorm] -> Dropout per hidden layer; returns the stack and its output width."""
    blocks: list[nn.Module] = []
    for width in layers:
        blocks += [nn.Linear(n_in, width), nn.ReLU(inplace=True)]
        if batch_norm:
            blocks.append(nn.BatchNorm1d(width))
        if dropout:
            blocks.append(nn.Dropout(dropout))
        n_in = width
    return nn.Sequential(*blocks), n_in


class TabularModel(nn.Module):
    """Input: one float tensor (N, n_categorical + n_continuous), category indices first (exact as floats below
    2**24), so the training loop can treat it like any other batch. Index 0 of every vocabulary is "unknown"."""

    def __init__(self, cardinalities: Sequence[int], n_continuous: int, n_out: int, layers: Sequence[int] = (200, 100),
                 dropout: float = 0.1, embedding_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_categorical = len(cardinalities)
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_size(n)) for n in cardinalities)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.bn_continuous = nn.BatchNorm1d(n_continuous) if n_continuous else None
        n_in = sum(e.embedding_dim for e in self.embeddings) + n_continuous
        self.layers, width = mlp(n_in, layers, dropout, batch_norm=True)
        self.out = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cats = x[:, : self.n_categorical].long()
        parts = [e(cats[:, j]) for j, e in enumerate(self.embeddings)]
        features = [self.embedding_dropout(torch.cat(parts, dim=1))] if parts else []
        if self.bn_continuous is not None:
            features.append(self.bn_continuous(x[:, self.n_categorical:]))
        return self.out(self.layers(torch.cat(features, dim=1)))
