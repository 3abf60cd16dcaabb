"""Base weights of a language model: a stored fineserve LM, or fast.ai's published WT103 files (converted to
safetensors + a JSON vocabulary), mapped onto this model's vocabulary the ULMFiT way: rows of tokens both
vocabularies know are copied, new tokens start from the mean row."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from fineserve_common.configs import BaseWeights
from fineserve_common.tasks import LANGUAGE_MODEL

from ..errors import WeightsUnavailable
from ..model_card import read_model_card, read_weights
from .awd_lstm import AWDLSTMSize
from .tokenizer import Vocab

EMBEDDING = "encoder.embedding.weight"
DECODER_BIAS = "decoder.bias"
TIED_DECODER = "decoder.weight"
"""Same tensor as the embedding: never saved (safetensors refuses shared storage), re-tied on load."""

# fast.ai's AWD-LSTM language model keys -> this model's (the dropped weight_hh copy and tied decoder skipped).
_WT103_KEYS = (
    (re.compile(r"0\.encoder\.weight"), EMBEDDING),
    (re.compile(r"0\.rnns\.(\d+)\.weight_hh_l0_raw"), r"encoder.rnns.\1.lstm.weight_hh_l0"),
    (re.compile(r"0\.rnns\.(\d+)\.module\.(weight_ih_l0|bias_ih_l0|bias_hh_l0)"), r"encoder.rnns.\1.lstm.\2"),
    (re.compile(r"1\.decoder\.bias"), DECODER_BIAS),
)
_WT103_SKIPPED = re.compile(r"0\.encoder_dp\.emb\.weight|0\.rnns\.\d+\.module\.weight_hh_l0|1\.decoder\.weight")


@dataclass(frozen=True)
class LMWeights:
    """A language model's weights (this model's key names, tied decoder left out) and its vocabulary."""

    state: dict[str, torch.Tensor]
    vocab: Vocab
    description: str

    def size(self) -> AWDLSTMSize:
        """The architecture the weights fit."""
        n_layers = sum(1 for k in self.state if k.endswith(".lstm.weight_hh_l0"))
        vocab_size, emb_size = self.state[EMBEDDING].shape
        hidden = self.state["encoder.rnns.0.lstm.weight_hh_l0"].shape[1] if n_layers > 1 else emb_size
        return AWDLSTMSize(vocab_size, emb_size, hidden, n_layers)


def wt103_vocab_path(weights: Path) -> Path:
    return weights.with_name(weights.stem + ".vocab.json")


def map_wt103_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fast.ai's names to this model's; an unknown key means another architecture, refused by name."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _WT103_SKIPPED.fullmatch(key):
            continue
        for pattern, target in _WT103_KEYS:
            if pattern.fullmatch(key):
                out[pattern.sub(target, key)] = value
                break
        else:
            raise WeightsUnavailable(f"unexpected key {key!r}: not fast.ai's AWD-LSTM language model layout")
    if EMBEDDING not in out or not any(k.endswith("lstm.weight_hh_l0") for k in out):
        raise WeightsUnavailable("the file lacks 0.encoder.weight or the 0.rnns.* LSTM weights of fast.ai's layout")
    return out


def _from_wt103_file(path: Path) -> LMWeights:
    vocab_path = wt103_vocab_path(path)
    if path.suffix != ".safetensors":
        raise WeightsUnavailable(f"{path}: text base weights must be .safetensors (convert fast.ai's .pth once)")
    try:
        state = safetensors.torch.load_file(path)
        vocab = Vocab(tuple(json.loads(vocab_path.read_text(encoding="utf-8"))))
    except FileNotFoundError as e:
        raise WeightsUnavailable(f"cannot read {e.filename}: the WT103 base needs the weights and "
                                 f"{vocab_path.name} (its itos list) side by side") from e
    except Exception as e:  # corrupt safetensors header or JSON
        raise WeightsUnavailable(f"cannot read the WT103 base {path}: {e}") from e
    mapped = map_wt103_keys(state)
    if mapped[EMBEDDING].shape[0] != len(vocab):
        raise WeightsUnavailable(f"{vocab_path.name} has {len(vocab)} tokens but the embedding "
                                 f"{mapped[EMBEDDING].shape[0]} rows")
    return LMWeights(mapped, vocab, f"fast.ai WT103-layout weights from {path}")


def _from_store(path: Path) -> LMWeights:
    card = read_model_card(path)
    if card.get("task") != LANGUAGE_MODEL:
        raise WeightsUnavailable(f"{path} holds a {card.get('task')} model, not a language model")
    state = read_weights(path)
    return LMWeights(state, Vocab.from_list(card["vocab"]), f"stored language model {path}")


def load_lm_weights(base: BaseWeights) -> LMWeights | None:
    """None for base kind "none"; raises WeightsUnavailable rather than silently starting from random."""
    if base.kind == "none":
        return None
    path = Path(base.path)
    return _from_store(path) if base.kind == "store" else _from_wt103_file(path)


def remap_vocab(weights: LMWeights, vocab: Vocab) -> dict[str, torch.Tensor]:
    """weights' state with embedding rows and decoder biases reordered for vocab; tokens the base lacks get
    the mean row (and mean bias), ULMFiT's initialisation for new words."""
    state = dict(weights.state)
    old_rows = [weights.vocab.index(t) for t in vocab.itos]
    known = torch.tensor([i is not None for i in old_rows])
    index = torch.tensor([i if i is not None else 0 for i in old_rows])
    for key in (EMBEDDING, DECODER_BIAS):
        if key in state:
            old = state[key]
            new = old[index].clone()
            new[~known] = old.mean(0).to(new.dtype)
            state[key] = new
    return state
