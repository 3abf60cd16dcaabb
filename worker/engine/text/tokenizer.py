"""fast.ai-style rule-based tokenising and the vocabulary saved with text models.

Written here (a few regexes) rather than taken from a library: spaCy or sentencepiece would bring models to
download or train, and none ships fast.ai's marker rules (xxmaj, xxup, xxrep, xxwrep) offline.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNK, PAD, BOS, MAJ, UP, REP, WREP = "xxunk", "xxpad", "xxbos", "xxmaj", "xxup", "xxrep", "xxwrep"
SPECIALS = (UNK, PAD, BOS, MAJ, UP, REP, WREP)
"""Always in every vocabulary, in this order: UNK is id 0 and PAD id 1."""

_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_CHAR_REPEAT = re.compile(r"(\S)(\1{3,})")
_WORD_REPEAT = re.compile(r"(?:^|(?<=\s))(\S+)((?:\s+\1){2,})(?=\s|$)")
_SPACES = re.compile(r"\s{2,}")
_TOKEN = re.compile(r"\w+(?:'\w+)?|'\w+|[^\w\s]", re.UNICODE)


def _clean(text: str) -> str:
    """HTML entities and line-break tags (IMDB's reviews are full of them) become plain text."""
    return _SPACES.sub(" ", _BR.sub("\n", html.unescape(text)))


def _mark_repeats(text: str) -> str:
    """'!!!!' -> ' xxrep 4 ! ', 'very very very' -> ' xxwrep 3 very ' (before splitting, as fast.ai does)."""
    text = _CHAR_REPEAT.sub(lambda m: f" {REP} {len(m.group(2)) + 1} {m.group(1)} ", text)
    return _WORD_REPEAT.sub(lambda m: f" {WREP} {len(m.group(2).split()) + 1} {m.group(1)} ", text)


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens of one text, starting with xxbos; capitalised words get xxmaj before them and
    all-caps words (two or more letters) xxup."""
    out = [BOS]
    for token in _TOKEN.findall(_mark_repeats(_clean(text))):
        if token in SPECIALS:
            out.append(token)
        elif len(token) > 1 and token.isupper():
            out += [UP, token.lower()]
        elif token[0].isupper():
            out += [MAJ, token.lower()]
        else:
            out.append(token)
    return out


@dataclass(frozen=True)
class Vocab:
    """Token strings by id (itos); specials first, then the corpus' tokens by descending frequency."""

    itos: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stoi", {s: i for i, s in enumerate(self.itos)})

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], max_size: int = 60000, min_freq: int = 2) -> Vocab:
        """Tokens seen at least min_freq times, the max_size most frequent (specials included in the count)."""
        return cls.from_counts(Counter(t for tokens in token_lists for t in tokens), max_size, min_freq)

    @classmethod
    def from_counts(cls, counts: Counter[str], max_size: int = 60000, min_freq: int = 2) -> Vocab:
        """build's rule from token counts (what a cached corpus holds)."""
        kept = [t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                if n >= min_freq and t not in SPECIALS]
        return cls(SPECIALS + tuple(kept[: max(0, max_size - len(SPECIALS))]))

    @classmethod
    def from_list(cls, itos: Sequence[str]) -> Vocab:
        if len(set(itos)) != len(itos) or list(itos[:2]) != [UNK, PAD]:
            raise ValueError("a vocabulary must hold unique strings and start with xxunk, xxpad")
        return cls(tuple(itos))

    @property
    def pad_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.itos)

    def numericalize(self, tokens: Sequence[str]) -> list[int]:
        stoi: dict[str, int] = self._stoi  # type: ignore[attr-defined]
        return [stoi.get(t, 0) for t in tokens]

    def index(self, token: str) -> int | None:
        return self._stoi.get(token)  # type: ignore[attr-defined]
