"""Tokenising a text data set once: the process pool gives exactly the tokenizer's tokens, progress is reported,
the cache hands the same ids back without tokenising, and the language model reads the unlabelled texts."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from fineserve_common.configs import TextConfig
from fineserve_common.events import Log
from worker.engine.families import open_job
from worker.engine.text import corpus as corpus_module
from worker.engine.text.corpus import PARALLEL_FROM, tokenize_texts, tokenized
from worker.engine.text.tokenizer import Vocab, tokenize

WORDS = ["good", "bad", "Movie", "PLOT", "!!!!", "very", "the", "<br />", "&amp;", "don't", "Zoë", "12"]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) + f" w{i % 97}" for i in range(n)]


def test_the_pool_gives_the_tokenizers_tokens_in_order_with_progress() -> None:
    texts = _texts(PARALLEL_FROM + 321)
    logs: list[str] = []
    corpus = tokenize_texts(texts, lambda e: logs.append(e.message) if isinstance(e, Log) else None, workers=2)
    assert [[corpus.itos[i] for i in row] for row in corpus.rows(texts)] == [tokenize(t) for t in texts]
    assert "2 processes" in logs[-1] and f"{len(texts):,} of {len(texts):,}" in logs[-1]
    assert len(logs) >= 5  # about every tenth of the way
    token_lists = [tokenize(t) for t in texts[:100]]
    vocab = Vocab.build(token_lists, max_size=20, min_freq=2)
    assert corpus.vocab(texts[:100], 20, 2) == vocab
    assert [list(x) for x in corpus.numericalize(texts[:100], vocab)] == [vocab.numericalize(t) for t in token_lists]


def test_a_second_job_reads_the_tokens_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts(50)
    first = tokenized(texts, lambda e: None, tmp_path)
    (entry,) = [p for p in tmp_path.iterdir()]
    assert sorted(p.name for p in entry.iterdir()) == ["ids.safetensors", "tokens.json"]

    def refuse(*args: object) -> None:
        raise AssertionError("tokenised although the cache holds these texts")

    monkeypatch.setattr(corpus_module, "tokenize_texts", refuse)
    logs: list[str] = []
    again = tokenized(texts, lambda e: logs.append(e.message), tmp_path)
    assert "read from the cache" in logs[0]
    assert again.itos == first.itos and np.array_equal(again.ids, first.ids)
    with pytest.raises(AssertionError, match="tokenised although"):
        tokenized([*texts[:-1], "another text"], lambda e: None, tmp_path)


def test_the_language_model_reads_the_unlabelled_texts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A word only the unlabelled rows hold is in the language model's vocabulary and streams, not the
    classifier's (which builds its own from labelled training rows when it has no base)."""
    monkeypatch.setenv(corpus_module.CACHE_ENV, str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "texts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "is_valid"])
        for i, text in enumerate(_texts(60)):
            writer.writerow([text, ("pos", "neg")[i % 2], i % 5 == 0])
        writer.writerows([["an unlabelled zyzzyva review", "", "false"]] * 5)
    common = {"emb_size": 8, "hidden_size": 8, "n_layers": 1, "min_freq": 2, "device": "cpu", "valid_pct": 0.1}
    lm = open_job(TextConfig(task="language_model", batch_size=4, **common), data, lambda e: None)
    word = lm.vocab.index("zyzzyva")
    assert word is not None
    assert any(word in doc.tolist() for doc in lm.train.docs + lm.valid.docs)
    classifier = open_job(TextConfig(task="text_classification", **common), data, lambda e: None)
    assert classifier.vocab.index("zyzzyva") is None
    assert len(classifier.train.ids) == 48
