"""ULMFiT's stage 3 starts from the language model's encoder: every encoder tensor and the vocabulary come over
unchanged, the classifier's encoder computes what the language model's does (eval mode), and a head-only stage
leaves it as the language model trained it."""

from __future__ import annotations

from pathlib import Path

import torch

from fineserve_common.configs import BaseWeights, Stage, TextConfig
from worker.engine import fine_tune
from worker.engine.families import open_job
from worker.engine.model_card import read_weights
from worker.engine.text.awd_lstm import AWDLSTMSize, LanguageModel

SIZE = {"emb_size": 8, "hidden_size": 12, "n_layers": 2, "max_vocab": 200, "min_freq": 1, "batch_size": 8,
        "bptt": 10, "max_len": 30, "device": "cpu", "precision": "fp32"}


def _ignore(event: object) -> None:
    pass


def test_the_classifier_starts_from_the_language_models_encoder(reviews: Path, tmp_path: Path) -> None:
    lm = fine_tune(TextConfig(task="language_model", freeze_epochs=0, epochs=1, **SIZE), reviews, tmp_path / "lm")
    stored = {k.removeprefix("encoder."): v for k, v in read_weights(tmp_path / "lm").items()
              if k.startswith("encoder.")}
    base = BaseWeights("store", path=str(tmp_path / "lm"))
    job = open_job(TextConfig(task="text_classification", base=base, **SIZE), reviews, _ignore)
    assert list(job.vocab.itos) == lm.card["vocab"]
    classifier = job.build(_ignore)
    encoder = classifier.encoder.state_dict()
    assert set(encoder) == set(stored)
    for key, value in stored.items():
        assert torch.equal(encoder[key], value), key

    language_model = LanguageModel(AWDLSTMSize(**lm.card["size"]))
    language_model.load_state_dict(read_weights(tmp_path / "lm"), strict=False)
    tokens = torch.randint(2, len(job.vocab), (3, 17))
    language_model.eval(), classifier.eval()
    with torch.no_grad():
        torch.testing.assert_close(classifier.encoder(tokens), language_model.encoder(tokens))

    head_only = TextConfig(task="text_classification", base=base, stages=(Stage(1, SIZE["n_layers"] + 1),), **SIZE)
    fine_tune(head_only, reviews, tmp_path / "classifier")
    trained = read_weights(tmp_path / "classifier")
    for key, value in stored.items():
        assert torch.equal(trained[f"encoder.{key}"], value), key
