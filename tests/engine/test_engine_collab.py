"""Collaborative filtering on real MovieLens data: the dot-product model's quality on MovieLens-100k against a
bias-only model (quality, over three splits) and what a Recommender answers from it; the neural variant, the
time split and resuming on the small sample."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from fineserve_common.configs import RatingsFormat
from fineserve_common.errors import InvalidArgument
from fineserve_common.events import Epoch, Event, JobResult, Log
from worker.engine import CollabConfig, Recommender, UnknownId, fine_tune
from worker.engine.errors import Cancelled, DatasetError
from worker.engine.tabular.ratings import Ratings, read_ratings, split_ratings

from .test_engine_checkpoint import stop_after_epoch

ML100K = RatingsFormat(items_file="u.item")  # u.data: user TAB item TAB rating TAB timestamp; u.item: id|title|...
SPLIT_SEED = 1
"""The split of the recommendation tests' model; test_dot_product_beats_biases_on_three_splits judges quality."""
QUALITY_SEEDS = (0, 1, 2)
BIAS_MARGIN = 0.02
"""The dot model's validation RMSE must be this much below the bias-only model's, on average over the splits.
Measured (2-core CPU): splits 0, 1, 2: dot model 0.9006, 0.8932, 0.9018; bias-only 0.9416, 0.9366, 0.9434 (gaps
0.041, 0.043, 0.042); 14 s for the three."""
STAR_WARS = "50"  # "Star Wars (1977)" in u.item
SEQUELS = {"172", "181"}  # "Empire Strikes Back, The (1980)", "Return of the Jedi (1983)"


@pytest.fixture(scope="module")
def ml100k(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobResult]:
    out = tmp_path_factory.mktemp("ml100k")
    start = time.perf_counter()
    result = fine_tune(CollabConfig(ratings=ML100K, seed=SPLIT_SEED, device="cpu"), shared_data / "movielens-100k",
                          out)
    seconds = time.perf_counter() - start
    print(f"\nMovieLens-100k dot product, random 80/20 split (seed {SPLIT_SEED}): "
          f"valid RMSE {result.metrics['rmse']:.4f} after {result.epochs_trained} epochs in {seconds:.1f} s")
    return out, result


@pytest.fixture(scope="module")
def recommender(ml100k: tuple[Path, JobResult]) -> Recommender:
    return Recommender.load(ml100k[0])


@pytest.fixture(scope="module")
def rated(shared_data: Path) -> dict[str, set[str]]:
    by_user: dict[str, set[str]] = defaultdict(set)
    for line in (shared_data / "movielens-100k/u.data").read_text().splitlines():
        user, item, _, _ = line.split("\t")
        by_user[user].add(item)
    return by_user


def bias_only_rmse(data: Ratings, seed: int, valid_pct: float = 0.2) -> float:
    """Validation RMSE of the strongest cheap baseline: the mean rating plus a user and an item bias, fitted by
    alternating ridge least squares on the training ratings; the ridge weight is the best of a few on the
    validation ratings themselves (which favours the baseline)."""
    train, valid = split_ratings(data, valid_pct, seed, by_time=False)
    users, items, ratings = data.users, data.items, data.ratings.astype(np.float64)
    mean = ratings[train].mean()
    best = float("inf")
    for ridge in (1.0, 3.0, 10.0, 25.0):
        user_bias, item_bias = np.zeros(users.max() + 1), np.zeros(items.max() + 1)
        for _ in range(15):
            rest = ratings[train] - mean - user_bias[users[train]]
            item_bias = (np.bincount(items[train], rest, len(item_bias))
                         / (np.bincount(items[train], minlength=len(item_bias)) + ridge))
            rest = ratings[train] - mean - item_bias[items[train]]
            user_bias = (np.bincount(users[train], rest, len(user_bias))
                         / (np.bincount(users[train], minlength=len(user_bias)) + ridge))
        predicted = np.clip(mean + user_bias[users[valid]] + item_bias[items[valid]], 1, 5)
        best = min(best, float(np.sqrt(((predicted - ratings[valid]) ** 2).mean())))
    return best


def test_dot_product_beats_biases_on_its_split(ml100k: tuple[Path, JobResult], shared_data: Path) -> None:
    rmse = ml100k[1].metrics["rmse"]
    baseline = bias_only_rmse(read_ratings(shared_data / "movielens-100k", ML100K), SPLIT_SEED)
    print(f"\nsplit {SPLIT_SEED}: dot model {rmse:.4f}, bias-only {baseline:.4f}")
    assert rmse < baseline, (rmse, baseline)
    card = ml100k[1].card
    assert len(card["users"]) == 943 and len(card["items"]) == 1682
    assert card["titles"][STAR_WARS] == "Star Wars (1977)"


@pytest.mark.quality
def test_dot_product_beats_biases_on_three_splits(shared_data: Path, tmp_path: Path) -> None:
    data = read_ratings(shared_data / "movielens-100k", ML100K)
    gaps = []
    for seed in QUALITY_SEEDS:
        result = fine_tune(CollabConfig(ratings=ML100K, seed=seed, device="cpu"), shared_data / "movielens-100k",
                           tmp_path / f"seed-{seed}")
        baseline = bias_only_rmse(data, seed)
        gaps.append(baseline - result.metrics["rmse"])
        print(f"\nsplit seed {seed}: dot model {result.metrics['rmse']:.4f}, bias-only {baseline:.4f}", flush=True)
    mean_gap = sum(gaps) / len(gaps)
    print(f"mean gap {mean_gap:.4f} over seeds {QUALITY_SEEDS}")
    assert mean_gap > BIAS_MARGIN, gaps
    assert all(gap > 0 for gap in gaps), gaps


def test_recommendations_exclude_rated_items(recommender: Recommender, rated: dict[str, set[str]]) -> None:
    users = ["1", "13", "405", "655", "943"]  # 405 and 655 rated hundreds of movies
    for user, rec in zip(users, recommender.recommend(users, k=20), strict=True):
        items = [i for i, _ in rec.items]
        assert len(items) == 20 and not rec.fallback
        assert not set(items) & rated[user], f"user {user} was recommended movies they rated"
        scores = [s for _, s in rec.items]
        assert scores == sorted(scores, reverse=True)
        assert all(0.8 <= s <= 5.2 for s in scores)


def test_batch_of_users_equals_single_calls(recommender: Recommender) -> None:
    users = [str(u) for u in range(1, 101)]
    batch = recommender.recommend(users, k=10)
    for user, rec in zip(users[:10], batch[:10], strict=True):
        single = recommender.recommend([user], k=10)[0]
        assert [i for i, _ in single.items] == [i for i, _ in rec.items]
        assert [s for _, s in single.items] == pytest.approx([s for _, s in rec.items], abs=1e-5)


def test_similar_items_for_star_wars(recommender: Recommender) -> None:
    rec = recommender.similar(STAR_WARS, k=10)
    print("\nmost similar to Star Wars (1977):")
    for item, cosine in rec.items:
        print(f"  {cosine:.3f}  {recommender.title(item)}")
    items = [i for i, _ in rec.items]
    assert STAR_WARS not in items and len(items) == 10
    assert all(recommender.title(i) for i in items)
    assert set(items) & SEQUELS, "neither Star Wars sequel is among the 10 most similar movies"


def test_pair_predictions_batch_equals_single(recommender: Recommender) -> None:
    pairs = [("1", "50"), ("13", "172"), ("405", "1"), ("943", "1682"), ("1", "1")]
    batch, fallback = recommender.predict_pairs(pairs)
    assert not fallback
    for pair, rating in zip(pairs, batch, strict=True):
        assert recommender.predict_pairs([pair])[0] == pytest.approx([rating], abs=1e-5)
    scores = dict(recommender.recommend(["943"], k=1682)[0].items)
    assert batch[3] == pytest.approx(scores["1682"], abs=1e-5)  # the same model behind both queries


def test_top_by_bias(recommender: Recommender) -> None:
    top = recommender.top_by_bias(5)
    print("\nhighest item biases:", ", ".join(f"{recommender.title(i)} ({b:.2f})" for i, b in top))
    biases = [b for _, b in top]
    assert biases == sorted(biases, reverse=True) and len(top) == 5


def test_unknown_ids_and_popularity_fallback(recommender: Recommender) -> None:
    with pytest.raises(UnknownId, match="'no-such-user'"):
        recommender.recommend(["1", "no-such-user"], k=5)
    with pytest.raises(UnknownId, match="item 'no-such-item'"):
        recommender.similar("no-such-item", k=5)
    with pytest.raises(UnknownId, match="item 'x'"):
        recommender.predict_pairs([("1", "x")])
    recs = recommender.recommend(["1", "no-such-user"], k=5, fallback=True)
    assert not recs[0].fallback and recs[1].fallback
    assert recs[1].items[0][0] == STAR_WARS  # the most-rated movie of MovieLens-100k (583 ratings)
    ratings, used = recommender.predict_pairs([("no-such-user", STAR_WARS), ("1", "50")], fallback=True)
    assert used and ratings[0] == pytest.approx(4.358, abs=1e-3)  # Star Wars' mean rating


def test_neural_variant_beats_the_mean(shared_data: Path, tmp_path: Path) -> None:
    sample = shared_data / "movie_lens_sample"
    cfg = CollabConfig(arch="neural", epochs=4, seed=0, device="cpu")
    result = fine_tune(cfg, sample, tmp_path)
    data = read_ratings(sample, RatingsFormat())
    train, valid = split_ratings(data, cfg.valid_pct, cfg.seed, by_time=False)
    mean = data.ratings[train].mean()
    baseline = float(((data.ratings[valid] - mean) ** 2).mean() ** 0.5)
    print(f"\nneural collab on movie_lens_sample: valid RMSE {result.metrics['rmse']:.4f}, "
          f"predicting the mean {baseline:.4f}")
    assert result.metrics["rmse"] < baseline - 0.05
    rec = Recommender.load(tmp_path)
    assert len(rec.recommend(["73"], k=5)[0].items) == 5
    with pytest.raises(Exception, match="no item biases"):
        rec.top_by_bias(3)


def test_time_split_validates_on_the_latest_ratings(shared_data: Path) -> None:
    data = read_ratings(shared_data / "movie_lens_sample", RatingsFormat())
    train, valid = split_ratings(data, 0.2, 0, by_time=True)
    assert len(valid) == round(len(data) * 0.2)
    assert data.timestamps[train].max() <= data.timestamps[valid].min()


def resumes_where_it_stopped(cfg: object, data: Path, out: Path) -> None:
    """A job cancelled after epoch 1 of 2 resumes with epoch 2 only, from its checkpoint: it ends with the weights of
    the uninterrupted job (a resume that retrained from scratch would train epoch 1 again; one that skipped the
    epoch without the checkpoint's weights would end elsewhere)."""
    with pytest.raises(Cancelled):
        fine_tune(cfg, data, out / "stopped", *stop_after_epoch(1, []))
    events: list[Event] = []
    resumed = fine_tune(cfg, data, out / "stopped", events.append)
    whole = fine_tune(cfg, data, out / "whole")
    assert [e.epoch for e in events if isinstance(e, Epoch)] == [2]
    assert "resumed from checkpoint after epoch 1" in [e.message for e in events if isinstance(e, Log)]
    assert resumed.epochs_trained == 2 and resumed.metrics == whole.metrics
    stopped = safetensors.torch.load_file(out / "stopped" / "model.safetensors")
    uninterrupted = safetensors.torch.load_file(out / "whole" / "model.safetensors")
    assert stopped.keys() == uninterrupted.keys()
    assert all(torch.equal(stopped[k], uninterrupted[k]) for k in stopped)


def test_resume_after_cancel_continues_from_the_checkpoint(shared_data: Path, tmp_path: Path) -> None:
    resumes_where_it_stopped(CollabConfig(epochs=2, seed=0, device="cpu"), shared_data / "movie_lens_sample",
                             tmp_path)


def test_bad_ratings_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("u,i,r\n1,2,3\n")
    (tmp_path / "b.csv").write_text("u,i,r\n1,2,3\n")
    with pytest.raises(DatasetError, match="exactly one"):
        read_ratings(tmp_path, RatingsFormat())
    with pytest.raises(InvalidArgument, match=r"\.\."):  # refused when the format is built (at the door)
        RatingsFormat(ratings_file="../a.csv")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DatasetError, match="not a file inside"):
        read_ratings(tmp_path, RatingsFormat(ratings_file="sub"))
    (tmp_path / "b.csv").write_text("u,i,r\n1,2,great\n")
    with pytest.raises(DatasetError, match="numbers"):
        read_ratings(tmp_path, RatingsFormat(ratings_file="b.csv"))
    with pytest.raises(DatasetError, match="'stars' is not a column"):
        read_ratings(tmp_path, RatingsFormat(ratings_file="a.csv", rating_column="stars"))
    assert torch.equal(torch.tensor(read_ratings(tmp_path, RatingsFormat(ratings_file="a.csv")).ratings),
                       torch.tensor([3.0]))
