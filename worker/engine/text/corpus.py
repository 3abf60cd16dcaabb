"""A data set's texts tokenised once: in parallel (a process per core, in chunks, with progress logs) and cached
on disk, so that a job's later stages, a resumed job and the next job on the same texts (the classifier after
its language model) skip the 100,000-review tokenising pass.

Tokens are stored as ids into the corpus' own list of distinct tokens (safetensors + JSON, never pickle); a job
maps them onto its vocabulary with one array lookup.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.numpy

from fineserve_common.events import Log

from ..train_loop import OnEvent
from .tokenizer import Vocab, tokenize

TOKENIZER_VERSION = 1
"""Part of the cache key: bump it whenever tokenize() changes what it returns."""
CACHE_ENV = "FINESERVE_TEXT_CACHE"
"""The cache's folder (default: fineserve-text-cache in the system's temp folder); "off" disables it."""
CACHE_ENTRIES = 4
"""Corpora kept; the least recently used beyond that are removed (an IMDB-sized one is about 120 MB)."""
CHUNK = 1000
PARALLEL_FROM = 4 * CHUNK
"""Fewer texts are tokenised in this process: starting the pool would cost more than it saves."""


def _tokenize_chunk(texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One chunk's distinct tokens, its texts' ids into them (flat) and each text's length: far less to send
    back between processes than the token strings."""
    local: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        tokens = tokenize(text)
        ids += [local.setdefault(t, len(local)) for t in tokens]
        lengths[i] = len(tokens)
    return list(local), np.asarray(ids, dtype=np.int32), lengths


@dataclass
class TokenizedTexts:
    """Every text's tokens as ids into itos (the corpus' distinct tokens): text i is ids[offsets[i]:offsets[i+1]]."""

    itos: list[str]
    ids: np.ndarray
    offsets: np.ndarray
    texts: Sequence[str]
    _row: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._row = {t: i for i, t in enumerate(self.texts)}

    def rows(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The corpus ids of each text (texts must be among the corpus' texts)."""
        return [self.ids[self.offsets[i]:self.offsets[i + 1]] for i in (self._row[t] for t in texts)]

    def vocab(self, texts: Sequence[str], max_size: int, min_freq: int) -> Vocab:
        """Vocab.build over these texts' tokens, from counts of ids (no token lists built)."""
        counts = np.bincount(np.concatenate(self.rows(texts)) if texts else np.zeros(0, np.int32),
                             minlength=len(self.itos))
        return Vocab.from_counts(Counter({self.itos[i]: int(counts[i]) for i in np.flatnonzero(counts)}),
                                 max_size, min_freq)

    def numericalize(self, texts: Sequence[str], vocab: Vocab) -> list[np.ndarray]:
        """Each text's ids in vocab (xxunk for tokens it lacks)."""
        lookup = np.array([vocab.index(t) or 0 for t in self.itos], dtype=np.int64)
        return [lookup[row] for row in self.rows(texts)]


def tokenize_texts(texts: Sequence[str], on_event: OnEvent, workers: int | None = None) -> TokenizedTexts:
    """texts tokenised by a pool of `workers` processes (default: one per usable core), CHUNK texts at a time,
    with a Log about every tenth of the way."""
    workers = workers or len(os.sched_getaffinity(0))
    chunks = [texts[s:s + CHUNK] for s in range(0, len(texts), CHUNK)]
    start, itos, stoi = time.perf_counter(), [], {}
    ids, lengths = [], []
    step = max(1, len(chunks) // 10)

    def merge(n: int, result: tuple[list[str], np.ndarray, np.ndarray]) -> None:
        local, chunk_ids, chunk_lengths = result
        lookup = np.array([stoi.setdefault(t, len(stoi)) for t in local] or [0], dtype=np.int32)
        ids.append(lookup[chunk_ids])
        lengths.append(chunk_lengths)
        if (n + 1) % step == 0 or n + 1 == len(chunks):
            done = min(len(texts), (n + 1) * CHUNK)
            on_event(Log(f"tokenised {done:,} of {len(texts):,} texts "
                         f"({done / max(time.perf_counter() - start, 1e-9):,.0f} texts/s, {workers} processes)"))

    if workers > 1 and len(texts) >= PARALLEL_FROM:
        # forkserver, not fork: a job runs in a threaded Ray worker, and a child forked from threads can inherit
        # a lock held by one of them; the server preloads this module once and forks each child from itself.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for n, result in enumerate(pool.map(_tokenize_chunk, chunks)):
                merge(n, result)
    else:
        workers = 1
        for n, chunk in enumerate(chunks):
            merge(n, _tokenize_chunk(chunk))
    itos = list(stoi)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lengths) if lengths else np.zeros(0, np.int64), out=offsets[1:])
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    return TokenizedTexts(itos, flat, offsets, texts)


def corpus_key(texts: Sequence[str]) -> str:
    """The cache key: the texts, in order, and the tokenizer's version."""
    digest = hashlib.sha256(f"fineserve-tokens-v{TOKENIZER_VERSION}\0{len(texts)}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def cache_dir() -> Path | None:
    configured = os.environ.get(CACHE_ENV, "")
    if configured == "off":
        return None
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "fineserve-text-cache"


def tokenized(texts: Sequence[str], on_event: OnEvent, root: Path | None = None) -> TokenizedTexts:
    """texts tokenised, from the cache under root (default cache_dir()) when it holds them, else tokenised and
    stored there. An unreadable entry is tokenised afresh; a cache that cannot be written is only logged."""
    root = root or cache_dir()
    key = corpus_key(texts)
    entry = root / key if root else None
    if entry is not None and entry.is_dir():
        try:
            arrays = safetensors.numpy.load_file(entry / "ids.safetensors")
            itos = json.loads((entry / "tokens.json").read_text(encoding="utf-8"))
            if len(arrays["offsets"]) == len(texts) + 1:
                os.utime(entry)
                on_event(Log(f"tokens of {len(texts):,} texts read from the cache ({entry})"))
                return TokenizedTexts(itos, arrays["ids"], arrays["offsets"], texts)
        except (OSError, ValueError, KeyError) as e:
            on_event(Log(f"token cache entry {entry} unreadable ({e}): tokenising again"))
    corpus = tokenize_texts(texts, on_event)
    if entry is not None:
        try:
            _store(corpus, entry)
        except OSError as e:
            on_event(Log(f"token cache {root} not written ({e})"))
    return corpus


def _store(corpus: TokenizedTexts, entry: Path) -> None:
    """Written to a temporary folder beside it, then renamed: readers see a whole entry or none."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
    try:
        safetensors.numpy.save_file({"ids": corpus.ids, "offsets": corpus.offsets}, str(tmp / "ids.safetensors"))
        (tmp / "tokens.json").write_text(json.dumps(corpus.itos, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not entry.is_dir():  # another job may have stored the same corpus first
            raise
    entries = sorted((p for p in entry.parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[CACHE_ENTRIES:]:
        shutil.rmtree(old, ignore_errors=True)
