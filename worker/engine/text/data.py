"""TEXT_CSV data sets (label,text[,is_valid]) and the two ways ULMFiT batches them: contiguous token streams
with variable-length BPTT for the language model, and similar-length padded batches for the classifier."""

from __future__ import annotations

import csv
import itertools
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError
from .tokenizer import tokenize

TEXT_FILE = "texts.csv"
_TRUE = {"true", "1", "yes", "valid"}


@dataclass(frozen=True)
class TextRow:
    text: str
    label: str
    """"" for an unlabelled text (language-model data only)."""


@dataclass(frozen=True)
class TextCsv:
    train: list[TextRow]
    valid: list[TextRow]

    @property
    def classes(self) -> list[str]:
        return sorted({r.label for r in self.train if r.label})


def find_text_csv(root: str | Path) -> Path:
    """root/texts.csv, or the only .csv in root."""
    root = Path(root)
    if root.is_file():
        return root
    if (root / TEXT_FILE).is_file():
        return root / TEXT_FILE
    found = sorted(p for p in root.glob("*.csv") if p.is_file())
    if len(found) != 1:
        raise DatasetError(f"{root} needs {TEXT_FILE} or exactly one .csv file (found {len(found)})")
    return found[0]


def read_text_csv(root: str | Path, valid_pct: float, seed: int) -> TextCsv:
    """Rows with is_valid true form the validation set; without that column a seeded valid_pct share does."""
    path = find_text_csv(root)
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise DatasetError(f"{path.name} needs a header with a 'text' column (and 'label', 'is_valid')")
            rows = [(TextRow((r.get("text") or "").strip(), (r.get("label") or "").strip()),
                     (r.get("is_valid") or "").strip().lower() in _TRUE) for r in reader]
            has_valid_column = "is_valid" in reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    rows = [(row, valid) for row, valid in rows if row.text]
    if not has_valid_column:
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        held = set(order[: round(len(rows) * valid_pct)])
        rows = [(row, i in held) for i, (row, _) in enumerate(rows)]
    data = TextCsv([r for r, v in rows if not v], [r for r, v in rows if v])
    if not data.train or not data.valid:
        raise DatasetError(f"{path.name} needs texts for training and validation "
                           f"(found {len(data.train)} and {len(data.valid)})")
    return data


def write_folds(root: str | Path, k: int, seed: int, out_dir: str | Path, labelled: int = 0) -> list[Path]:
    """k copies of a TEXT_CSV data set as out_dir/fold-<i>/texts.csv, fold i holding out (is_valid) a seeded,
    label-stratified k-th of the labelled texts, so that each is held out exactly once; unlabelled texts always
    train. Averaging a recipe over the folds measures it on every labelled text, not on one small split.

    labelled > 0 keeps the labels of only that many training texts per fold (stratified) and blanks the rest:
    ULMFiT's semi-supervised setting, where the language model reads every text and the classifier few labels."""
    data = read_text_csv(root, 0.5, seed)
    rows = data.train + data.valid
    by_label: dict[str, list[int]] = {}
    for i in random.Random(seed).sample(range(len(rows)), len(rows)):
        if rows[i].label:
            by_label.setdefault(rows[i].label, []).append(i)
    fold_of = {i: n % k for label in sorted(by_label) for n, i in enumerate(by_label[label])}
    # The training labels kept: alternating between the classes (balanced), in their shuffled order.
    ranked = [i for group in itertools.zip_longest(*by_label.values()) for i in group if i is not None]
    paths = []
    for fold in range(k):
        kept = set([i for i in ranked if fold_of[i] != fold][:labelled] if labelled else fold_of)
        path = Path(out_dir) / f"fold-{fold}"
        path.mkdir(parents=True, exist_ok=True)
        with open(path / TEXT_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "text", "is_valid"])
            writer.writerows([r.label if i in kept or fold_of.get(i) == fold else "", r.text, fold_of.get(i) == fold]
                             for i, r in enumerate(rows))
        paths.append(path)
    return paths


def tokenize_all(texts: Sequence[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


class LMStreams:
    """Language-model batches: every text's ids concatenated (each starts with xxbos), cut into batch_size
    contiguous streams, read bptt tokens at a time; each batch's length varies around bptt (N(bptt, 5) 95% of
    the time, bptt/2 otherwise) as in AWD-LSTM, so that the cut points move between epochs.

    Yields (x, y) with y the next token of every x position, flattened to (batch * length,)."""

    def __init__(self, ids: Sequence[Sequence[int]], batch_size: int, bptt: int, shuffle: bool, seed: int = 0
                 ) -> None:
        self.docs = [_as_tensor(d) for d in ids]
        self.batch_size, self.bptt, self.shuffle, self.seed = batch_size, bptt, shuffle, seed
        self.epoch = 0
        total = sum(len(d) for d in self.docs)
        self.stream_len = total // batch_size
        if self.stream_len < 2:
            raise DatasetError(f"{total} tokens cannot make {batch_size} streams: lower batch_size")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, (self.stream_len - 1) // self.bptt)

    def _lengths(self, rng: random.Random) -> list[int]:
        """len(self) batch lengths covering the streams: the 1cycle schedule counts on that many steps."""
        n = len(self)
        if not self.shuffle:
            return [self.bptt] * n
        draws = [max(5.0, rng.gauss(self.bptt if rng.random() < 0.95 else self.bptt / 2, 5)) for _ in range(n)]
        scale = (self.stream_len - 1) / sum(draws)
        return [max(1, int(d * scale)) for d in draws]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        docs = list(self.docs)
        if self.shuffle:
            rng.shuffle(docs)
        flat = torch.cat(docs)[: self.stream_len * self.batch_size]
        streams = flat.view(self.batch_size, self.stream_len)
        pos = 0
        for length in self._lengths(rng):
            length = min(length, self.stream_len - 1 - pos)
            yield streams[:, pos:pos + length], streams[:, pos + 1:pos + 1 + length].reshape(-1)
            pos += length


class SortedTextBatches:
    """Classifier batches of texts with similar lengths, left-padded with pad_id (so the last position is every
    text's last token). Training shuffles within chunks of about 50 batches sorted by length (fast.ai's
    SortishSampler); validation goes longest first. A training batch of one text (BatchNorm cannot train on it)
    joins the batch before it."""

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int], batch_size: int, pad_id: int,
                 shuffle: bool, seed: int = 0) -> None:
        self.ids, self.labels = [_as_tensor(d) for d in ids], list(labels)
        self.batch_size, self.pad_id, self.shuffle, self.seed = batch_size, pad_id, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._batches(list(range(len(self.ids)))))

    def _batches(self, order: list[int]) -> list[list[int]]:
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.shuffle and len(batches) > 1 and len(batches[-1]) == 1:
            single = batches.pop()
            batches[-1] += single
        return batches

    def _order(self) -> list[int]:
        by_len = sorted(range(len(self.ids)), key=lambda i: -len(self.ids[i]))
        if not self.shuffle:
            return by_len
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.ids)))
        rng.shuffle(order)
        chunk = self.batch_size * 50
        return [i for s in range(0, len(order), chunk)
                for i in sorted(order[s:s + chunk], key=lambda i: -len(self.ids[i]))]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self._batches(self._order())
        if self.shuffle:
            random.Random(self.seed * 7919 + self.epoch).shuffle(batches)
        for batch in batches:
            yield pad_left([self.ids[i] for i in batch], self.pad_id), torch.tensor([self.labels[i] for i in batch])


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        if len(s):
            out[row, width - len(s):] = torch.as_tensor(s)
    return out


def _as_tensor(ids: Sequence[int]) -> torch.Tensor:
    """A text's ids as one int64 tensor: a list of Python ints per token would take 25 times the memory."""
    return torch.as_tensor(np.asarray(ids, dtype=np.int64))
