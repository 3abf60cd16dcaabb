"""AWD-LSTM (Merity et al.) and the ULMFiT heads on it, in plain PyTorch.

Regularisation as in the paper: embedding dropout (whole words), locked (variational) dropout on the
embeddings, between layers and on the output (one mask per sequence), and DropConnect on each LSTM's
hidden-to-hidden matrix (one mask per forward pass, so the same weights are dropped at every time step).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

# ULMFiT's dropouts for the language model (the classifier's are in CLASSIFIER_DROPOUTS); both are scaled by
# a job's drop_mult.
LM_DROPOUTS = {"input": 0.25, "embedding": 0.02, "hidden": 0.15, "weight": 0.2, "output": 0.1}
CLASSIFIER_DROPOUTS = {"input": 0.25, "embedding": 0.05, "hidden": 0.15, "weight": 0.2, "output": 0.1}


@dataclass(frozen=True)
class AWDLSTMSize:
    """The published model is 400/1152/3; tests use tiny ones."""

    vocab_size: int
    emb_size: int = 400
    hidden_size: int = 1152
    n_layers: int = 3


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by every time step of a (batch, time, features) input."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


class EmbeddingDropout(nn.Module):
    """Drops whole rows of the embedding matrix (a dropped word is dropped everywhere in the batch)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        weight = embedding.weight
        if self.training and self.p:
            mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - self.p) / (1 - self.p)
            weight = weight * mask
        return F.embedding(tokens, weight, embedding.padding_idx)


class WeightDropLSTM(nn.Module):
    """A one-layer nn.LSTM whose weight_hh_l0 is dropped (DropConnect) afresh on every forward pass.

    The stored parameter stays the raw matrix; the dropped copy is passed through torch.func.functional_call,
    so the module is never mutated and nothing but plain tensors is saved.
    """

    def __init__(self, input_size: int, hidden_size: int, p: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.p = p

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN has no bf16 LSTM primitive on CPUs without native bf16: the recurrence stays fp32 on CPU.
            with torch.autocast("cpu", enabled=False):
                return self._run(x.float(), (state[0].float(), state[1].float()))
        return self._run(x, state)

    def _run(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if not self.training or self.p == 0:
            return self.lstm(x, state)
        dropped = F.dropout(self.lstm.weight_hh_l0, self.p, training=True)
        with warnings.catch_warnings():
            # cuDNN notes that the substituted weight is not in its flat buffer (it copies it: expected here).
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            return functional_call(self.lstm, {"weight_hh_l0": dropped}, (x, state))


class AWDLSTMEncoder(nn.Module):
    """Embedding -> n_layers LSTMs (the last one back to emb_size, so the decoder can be tied).

    It keeps its hidden state between calls (detached), as the language model reads contiguous streams;
    reset() starts new streams. Outputs (batch, time, emb_size) of the last layer after output dropout.
    """

    def __init__(self, size: AWDLSTMSize, dropouts: dict[str, float], pad_id: int = 1) -> None:
        super().__init__()
        self.size = size
        self.embedding = nn.Embedding(size.vocab_size, size.emb_size, padding_idx=pad_id)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
            self.embedding.weight[pad_id] = 0  # padding reads as nothing; padding_idx keeps it so
        self.embedding_dropout = EmbeddingDropout(dropouts["embedding"])
        self.input_dropout = LockedDropout(dropouts["input"])
        sizes = [size.emb_size] + [size.hidden_size] * (size.n_layers - 1) + [size.emb_size]
        self.rnns = nn.ModuleList(WeightDropLSTM(sizes[i], sizes[i + 1], dropouts["weight"])
                                  for i in range(size.n_layers))
        self.hidden_dropouts = nn.ModuleList(
            LockedDropout(dropouts["hidden"] if i < size.n_layers - 1 else dropouts["output"])
            for i in range(size.n_layers))
        self._state: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def reset(self) -> None:
        self._state = None

    def _initial_state(self, batch: int, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(like.new_zeros(1, batch, rnn.lstm.hidden_size), like.new_zeros(1, batch, rnn.lstm.hidden_size))
                for rnn in self.rnns]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.input_dropout(self.embedding_dropout(self.embedding, tokens))
        state = self._state
        if state is None or state[0][0].size(1) != tokens.size(0):
            state = self._initial_state(tokens.size(0), self.embedding.weight)
        new_state = []
        for rnn, dropout, layer_state in zip(self.rnns, self.hidden_dropouts, state, strict=True):
            x, (h, c) = rnn(x, (layer_state[0].to(x.dtype), layer_state[1].to(x.dtype)))
            new_state.append((h.detach().float(), c.detach().float()))
            x = dropout(x)
        self._state = new_state
        return x


class LanguageModel(nn.Module):
    """Encoder + a linear decoder to the vocabulary whose weight is the embedding matrix (tied)."""

    def __init__(self, size: AWDLSTMSize, drop_mult: float = 1.0, pad_id: int = 1) -> None:
        super().__init__()
        self.encoder = AWDLSTMEncoder(size, {k: v * drop_mult for k, v in LM_DROPOUTS.items()}, pad_id)
        self.decoder = nn.Linear(size.emb_size, size.vocab_size)
        self.decoder.weight = self.encoder.embedding.weight
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits flattened to (batch * time, vocab), the shape the training loop's loss takes."""
        out = self.decoder(self.encoder(tokens))
        return out.reshape(-1, out.size(-1))

    def reset(self) -> None:
        self.encoder.reset()

    def layer_groups(self) -> list[nn.ModuleList]:
        """Each LSTM, then embedding + decoder bias last: the head-only stage trains the (tied) word vectors,
        which new vocabulary rows need most."""
        enc = self.encoder
        return [nn.ModuleList([rnn]) for rnn in enc.rnns] + [nn.ModuleList([enc.embedding, _BiasOnly(self.decoder)])]

    def freeze_to(self, n: int) -> None:
        _freeze_to(self.layer_groups(), n)


class _BiasOnly(nn.Module):
    """The decoder's bias as a module of its own, so its group does not hold the tied weight twice."""

    def __init__(self, decoder: nn.Linear) -> None:
        super().__init__()
        self.bias = decoder.bias


class PoolingHead(nn.Module):
    """ULMFiT's concat pooling: [last state, max, mean] over non-pad positions -> BN/dropout/linear blocks."""

    def __init__(self, emb_size: int, n_classes: int, hidden: int = 50, drop_mult: float = 1.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(3 * emb_size), nn.Dropout(0.2 * drop_mult), nn.Linear(3 * emb_size, hidden), nn.ReLU(),
            nn.BatchNorm1d(hidden), nn.Dropout(0.1 * drop_mult), nn.Linear(hidden, n_classes))

    def forward(self, outputs: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """outputs (batch, time, emb) of left-padded sequences; pad_mask True at padding."""
        keep = (~pad_mask).unsqueeze(-1).to(outputs.dtype)
        last = outputs[:, -1]
        mean = (outputs * keep).sum(1) / keep.sum(1).clamp(min=1)
        maxed = outputs.masked_fill(pad_mask.unsqueeze(-1), float("-inf")).max(1).values
        return self.layers(torch.cat([last, maxed, mean], dim=1).float())


class TextClassifier(nn.Module):
    """A language model's encoder read over each (left-padded) text from a fresh state, then the pooling head."""

    def __init__(self, size: AWDLSTMSize, n_classes: int, drop_mult: float = 0.5, pad_id: int = 1) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.encoder = AWDLSTMEncoder(size, {k: v * drop_mult for k, v in CLASSIFIER_DROPOUTS.items()}, pad_id)
        self.head = PoolingHead(size.emb_size, n_classes, drop_mult=drop_mult)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.encoder.reset()
        outputs = self.encoder(tokens)
        self.encoder.reset()
        return self.head(outputs, tokens == self.pad_id)

    def layer_groups(self) -> list[nn.ModuleList]:
        """Embedding, each LSTM, head: ULMFiT unfreezes them from the last one back."""
        enc = self.encoder
        return ([nn.ModuleList([enc.embedding])] + [nn.ModuleList([rnn]) for rnn in enc.rnns]
                + [nn.ModuleList([self.head])])

    def freeze_to(self, n: int) -> None:
        _freeze_to(self.layer_groups(), n)


def _freeze_to(groups: list[nn.ModuleList], n: int) -> None:
    """Groups [0, n) stop training; the rest train. (No BatchNorm in the encoder, so nothing else to keep.)"""
    for i, group in enumerate(groups):
        for p in group.parameters():
            p.requires_grad_(i >= n)
