"""AWD-LSTM pieces: tokeniser and vocabulary, the dropouts, tied weights, WT103-layout base weights with a
vocabulary mismatch, and gradual unfreezing (only unfrozen groups change)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn
from torch.nn import functional as F

from fineserve_common.configs import BaseWeights, Stage, TextConfig
from fineserve_common.events import Event
from worker.engine import WeightsUnavailable, fine_tune
from worker.engine.schedule import group_max_lrs
from worker.engine.text.awd_lstm import AWDLSTMSize, LanguageModel, LockedDropout, WeightDropLSTM
from worker.engine.text.base_weights import load_lm_weights, remap_vocab, wt103_vocab_path
from worker.engine.text.data import LMStreams, SortedTextBatches
from worker.engine.text.family import ClassifierJob, classifier_inputs
from worker.engine.text.tokenizer import SPECIALS, Vocab, tokenize

TINY = AWDLSTMSize(vocab_size=30, emb_size=6, hidden_size=10, n_layers=2)


def test_tokenizer_marks_case_repeats_and_starts_with_bos() -> None:
    tokens = tokenize("This movie is GREAT!!!! so so so good.<br /><br />I'd watch it")
    assert tokens == ["xxbos", "xxmaj", "this", "movie", "is", "xxup", "great", "xxrep", "4", "!", "xxwrep", "3",
                      "so", "good", ".", "xxmaj", "i'd", "watch", "it"]


def test_vocab_min_freq_max_size_and_unknowns() -> None:
    vocab = Vocab.build([["a", "a", "a", "b", "b", "c"], ["b", "b", "d"]], max_size=len(SPECIALS) + 2, min_freq=2)
    assert vocab.itos == (*SPECIALS, "b", "a")
    assert vocab.numericalize(["a", "zzz"]) == [len(SPECIALS) + 1, 0]
    assert Vocab.from_list(list(vocab.itos)) == vocab


def test_weight_dropout_mask_is_the_same_at_every_time_step() -> None:
    """With the hidden-to-hidden matrix dropped once per forward, the run equals an undropped LSTM whose
    weight_hh is that one dropped matrix: the mask cannot change along the sequence."""
    torch.manual_seed(0)
    layer = WeightDropLSTM(4, 5, p=0.5).train()
    x = torch.randn(2, 7, 4)
    state = (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5))
    torch.manual_seed(1)
    out, _ = layer(x, state)
    torch.manual_seed(1)
    dropped = F.dropout(layer.lstm.weight_hh_l0, 0.5, training=True)
    assert (dropped == 0).any(), "the test needs some dropped weights"
    reference = torch.nn.LSTM(4, 5, batch_first=True)
    reference.load_state_dict({**layer.lstm.state_dict(), "weight_hh_l0": dropped.detach()})
    torch.testing.assert_close(out, reference(x, state)[0])
    assert layer.lstm.weight_hh_l0.ne(0).all(), "the stored raw weight must stay undropped"


def test_locked_dropout_drops_the_same_features_over_the_sequence() -> None:
    torch.manual_seed(0)
    out = LockedDropout(0.5).train()(torch.ones(3, 9, 8))
    zeros = out == 0
    assert zeros.any() and not zeros.all()
    assert (zeros == zeros[:, :1]).all(), "a dropped feature must stay dropped at every time step"


def test_nothing_is_dropped_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = LanguageModel(TINY, drop_mult=1.0).eval()
    x = torch.randint(0, TINY.vocab_size, (2, 6))
    model.reset()
    first = model(x)
    model.reset()
    torch.manual_seed(123)
    assert torch.equal(first, model(x)), "eval mode must be deterministic: no dropout of any kind"
    model.train()
    model.reset()
    assert not torch.equal(first, model(x)), "train mode must drop something"


def test_decoder_is_tied_to_the_embedding() -> None:
    model = LanguageModel(TINY)
    assert model.decoder.weight is model.encoder.embedding.weight
    with torch.no_grad():
        model.encoder.embedding.weight[5] += 1.0
    assert torch.equal(model.decoder.weight[5], model.encoder.embedding.weight[5])


def _write_wt103(directory: Path, itos: list[str], size: AWDLSTMSize) -> tuple[Path, dict[str, torch.Tensor]]:
    """A file with fast.ai's AWD-LSTM language-model key names and shapes (values random)."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(len(itos), size.emb_size, generator=g)
    state = {"0.encoder.weight": emb, "0.encoder_dp.emb.weight": emb.clone(), "1.decoder.weight": emb.clone(),
             "1.decoder.bias": torch.randn(len(itos), generator=g)}
    sizes = [size.emb_size] + [size.hidden_size] * (size.n_layers - 1) + [size.emb_size]
    for i in range(size.n_layers):
        n_in, n_out = sizes[i], sizes[i + 1]
        state[f"0.rnns.{i}.weight_hh_l0_raw"] = torch.randn(4 * n_out, n_out, generator=g)
        state[f"0.rnns.{i}.module.weight_ih_l0"] = torch.randn(4 * n_out, n_in, generator=g)
        state[f"0.rnns.{i}.module.weight_hh_l0"] = torch.randn(4 * n_out, n_out, generator=g)
        state[f"0.rnns.{i}.module.bias_ih_l0"] = torch.randn(4 * n_out, generator=g)
        state[f"0.rnns.{i}.module.bias_hh_l0"] = torch.randn(4 * n_out, generator=g)
    path = directory / "lstm_wt103.safetensors"
    safetensors.torch.save_file(state, path)
    wt103_vocab_path(path).write_text(json.dumps(itos))
    return path, state


def test_wt103_layout_maps_onto_the_model_with_a_vocabulary_mismatch(tmp_path: Path) -> None:
    base_itos = [*SPECIALS, "the", "movie", "good"]
    path, state = _write_wt103(tmp_path, base_itos, AWDLSTMSize(len(base_itos), 6, 10, 3))
    weights = load_lm_weights(BaseWeights("file", path=str(path)))
    assert weights is not None and weights.size() == AWDLSTMSize(len(base_itos), 6, 10, 3)
    target = Vocab((*SPECIALS, "good", "unseen", "the"))
    model = LanguageModel(AWDLSTMSize(len(target), 6, 10, 3))
    missing, unexpected = model.load_state_dict(remap_vocab(weights, target), strict=False)
    assert missing == ["decoder.weight"] and not unexpected  # tied: it is the embedding
    emb, old = model.encoder.embedding.weight, state["0.encoder.weight"]
    torch.testing.assert_close(emb[len(SPECIALS)], old[base_itos.index("good")])
    torch.testing.assert_close(emb[len(SPECIALS) + 2], old[base_itos.index("the")])
    torch.testing.assert_close(emb[len(SPECIALS) + 1], old.mean(0))  # new token: the mean row
    torch.testing.assert_close(model.decoder.bias[len(SPECIALS) + 1], state["1.decoder.bias"].mean())
    torch.testing.assert_close(model.encoder.rnns[2].lstm.weight_hh_l0, state["0.rnns.2.weight_hh_l0_raw"])
    torch.testing.assert_close(model.encoder.rnns[1].lstm.weight_ih_l0, state["0.rnns.1.module.weight_ih_l0"])


def test_wt103_base_without_its_vocabulary_is_refused(tmp_path: Path) -> None:
    path, _ = _write_wt103(tmp_path, list(SPECIALS), AWDLSTMSize(len(SPECIALS), 6, 10, 2))
    wt103_vocab_path(path).unlink()
    with pytest.raises(WeightsUnavailable, match=r"vocab\.json"):
        load_lm_weights(BaseWeights("file", path=str(path)))


def test_gradual_unfreezing_changes_only_the_unfrozen_groups(reviews: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[nn.Module, list[list[torch.Tensor]]]] = []
    real_build = ClassifierJob.build

    def spy(self: ClassifierJob, on_event: Callable[[Event], None]) -> nn.Module:
        model = real_build(self, on_event)
        built.append((model, [[p.detach().clone() for p in g.parameters()] for g in model.layer_groups()]))
        return model

    monkeypatch.setattr(ClassifierJob, "build", spy)
    cfg = TextConfig(task="text_classification", emb_size=TINY.emb_size, hidden_size=TINY.hidden_size,
                     n_layers=TINY.n_layers, min_freq=1, batch_size=4, device="cpu", precision="fp32",
                     stages=(Stage(1, 3), Stage(1, 2)), lr=1e-2, keep="last")
    result = fine_tune(cfg, reviews, tmp_path)
    assert result.epochs_trained == 2
    model, before = built[0]
    changed = [any(not torch.equal(a, b) for a, b in zip(old, g.parameters(), strict=True))
               for old, g in zip(before, model.layer_groups(), strict=True)]
    # groups: embedding, LSTM 0, LSTM 1, head; stage 0 trains the head, stage 1 also the last LSTM.
    assert changed == [False, False, True, True], changed


def test_classifier_lrs_fall_by_2_6_per_group() -> None:
    cfg = TextConfig(task="text_classification", n_layers=3, lr=1e-2)
    lrs = group_max_lrs(cfg, cfg.resolved_stages()[-1], cfg.n_groups)
    assert len(lrs) == 5
    for lower, upper in itertools.pairwise(lrs):
        assert upper / lower == pytest.approx(2.6)


def test_lm_streams_are_contiguous_with_variable_lengths() -> None:
    doc = list(range(2, 2 + 400))
    streams = LMStreams([doc], batch_size=4, bptt=10, shuffle=True, seed=3)
    batches = list(streams)
    assert len(batches) == len(streams)
    lengths = {x.shape[1] for x, _ in batches}
    assert len(lengths) > 1, "BPTT lengths must vary"
    row0 = torch.cat([x[0] for x, _ in batches]).tolist()
    assert row0 == doc[: len(row0)], "each row continues where the previous batch stopped"
    x, y = batches[0]
    assert torch.equal(y.view(4, -1)[:, :-1], x[:, 1:])


def test_classifier_training_batches_never_hold_a_single_text() -> None:
    """BatchNorm in the head cannot train on one text: 33 texts in batches of 32 train as one batch of 33."""
    ids = [[2] * (1 + i % 7) for i in range(33)]
    train = SortedTextBatches(ids, [i % 2 for i in range(33)], 32, 1, shuffle=True)
    assert len(train) == len(list(train)) == 1
    assert sorted(len(y) for _, y in train) == [33]
    valid = SortedTextBatches(ids, [i % 2 for i in range(33)], 32, 1, shuffle=False)
    assert [len(y) for _, y in valid] == [32, 1]


def test_text_config_round_trips_and_refuses_what_an_image_config_refuses() -> None:
    cfg = TextConfig(task="text_classification", base=BaseWeights("store", path="/models/lm"), n_layers=2,
                     stages=(Stage(1, 3, lr=0.02), Stage(2, 0)))
    assert TextConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ({"stages": 3}, {"learning_rate": 0.1}, {"base": "none"}):
        with pytest.raises(ValueError):
            TextConfig.from_dict(bad)


def test_classifier_reads_a_long_texts_end_and_old_cards_their_start() -> None:
    """New classifiers read a text's last max_len tokens ("text_window": "end" in their card); a card without
    the field is from before and is served the way it was trained: the first max_len tokens."""
    text = " ".join(f"w{i}" for i in range(20))
    vocab = Vocab.build([tokenize(text)], min_freq=1)
    every = vocab.numericalize(tokenize(text))
    assert classifier_inputs([text], vocab, 5) == [every[-5:]]
    assert classifier_inputs([text], vocab, 5, "start") == [every[:5]]
