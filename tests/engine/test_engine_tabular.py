"""The tabular model on UCI Adult (fast.ai's adult_sample): accuracy on a fixed 80/20 split, how a
TabularPredictor treats rows given as key-value maps (unseen categories, missing values, unknown columns), and
resuming a cancelled job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fineserve_common.events import JobResult
from worker.engine import EngineError, InvalidRow, Recommender, TabularConfig, TabularPredictor, fine_tune
from worker.engine.tabular.data import UNKNOWN, fit_schema
from worker.engine.tabular.model import embedding_size

from .test_engine_collab import resumes_where_it_stopped

# fast.ai's lesson columns for adult_sample.
CATEGORICAL = ("workclass", "education", "marital-status", "occupation", "relationship", "race")
CONTINUOUS = ("age", "fnlwgt", "education-num")


@pytest.fixture(scope="module")
def adult_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobResult]:
    out = tmp_path_factory.mktemp("adult")
    cfg = TabularConfig(target="salary", categorical=CATEGORICAL, continuous=CONTINUOUS, epochs=3, seed=0,
                        device="cpu")
    start = time.perf_counter()
    result = fine_tune(cfg, shared_data / "adult_sample", out)
    print(f"\nadult_sample salary, random 80/20 split (seed 0): valid accuracy {result.metrics['accuracy']:.4f} "
          f"after {result.epochs_trained} epochs in {time.perf_counter() - start:.1f} s")
    return out, result


def test_adult_accuracy(adult_model: tuple[Path, JobResult]) -> None:
    accuracy = adult_model[1].metrics["accuracy"]
    assert accuracy >= 0.83, f"valid accuracy {accuracy:.4f} < 0.83"
    schema = adult_model[1].card["schema"]
    assert schema["classes"] == ["<50k", ">=50k"]
    assert schema["missing_flags"] == ["education-num"]  # adult_sample leaves some education-num empty
    assert schema["vocabularies"]["workclass"][0] == UNKNOWN


def test_predict_rows_as_maps(adult_model: tuple[Path, JobResult]) -> None:
    predictor = TabularPredictor.load(adult_model[0])
    rich = {"workclass": "Private", "education": "Doctorate", "marital-status": "Married-civ-spouse",
            "occupation": "Prof-specialty", "relationship": "Husband", "race": "White", "age": "52",
            "fnlwgt": "200000", "education-num": "16"}
    young = {**rich, "education": "HS-grad", "marital-status": "Never-married", "relationship": "Own-child",
             "occupation": "Handlers-cleaners", "age": "19", "education-num": "9"}
    odd = {"workclass": "Space agency", "age": "", "salary": "ignored"}  # unseen category, missing values, target
    out = predictor.predict([rich, young, odd], top_k=1)
    assert out[0]["top"][0][0] == ">=50k" and out[1]["top"][0][0] == "<50k"
    assert len(out[2]["top"]) == 1 and 0.5 <= out[2]["top"][0][1] <= 1
    assert predictor.predict([rich], top_k=5)[0]["top"][0] == pytest.approx(out[0]["top"][0])
    with pytest.raises(InvalidRow, match="agee"):
        predictor.predict([{"agee": "30"}])
    with pytest.raises(InvalidRow, match="'age' needs a number"):
        predictor.predict([{"age": "thirty"}])
    with pytest.raises(EngineError, match="'tabular' model, not collaborative_filtering"):
        Recommender.load(adult_model[0])


def test_regression_target(shared_data: Path, tmp_path: Path) -> None:
    cfg = TabularConfig(target="hours-per-week", categorical=("occupation", "sex", "relationship"),
                        continuous=("age",), epochs=1, seed=0, device="cpu")
    result = fine_tune(cfg, shared_data / "adult_sample", tmp_path)
    card = result.card
    assert card["classes"] == [] and card["schema"]["target_stats"]["std"] > 10
    print(f"\nadult hours-per-week regression: valid RMSE {result.metrics['rmse']:.2f} "
          f"(std {card['schema']['target_stats']['std']:.2f})")
    assert result.metrics["rmse"] < 0.95 * card["schema"]["target_stats"]["std"]
    value = TabularPredictor.load(tmp_path).predict([{"occupation": "Exec-managerial", "age": "45"}])[0]["value"]
    assert 20 < value < 70


def test_resume_after_cancel_continues_from_the_checkpoint(shared_data: Path, tmp_path: Path) -> None:
    cfg = TabularConfig(target="salary", categorical=("workclass", "education"), continuous=("age",), epochs=2,
                        seed=0, device="cpu")
    resumes_where_it_stopped(cfg, shared_data / "adult_sample", tmp_path)


def test_embedding_sizes_and_column_inference() -> None:
    assert [embedding_size(n) for n in (2, 10, 100, 10_000, 10**7)] == [2, 6, 21, 278, 600]
    header = ["city", "size", "price"]
    rows = [["a", "1", "10"], ["b", "", "20"], ["a", "3", "x"]]
    schema = fit_schema(header, rows, "price", (), (), None)
    assert schema.categorical == ["city"] and schema.continuous == ["size"] and schema.missing_flags == ["size"]
    assert schema.classes == ["10", "20", "x"]
    encoded = schema.encode([{"city": "zzz", "size": ""}])
    assert encoded[0, 0] == 0  # unknown category
    assert encoded[0, 2] == 1  # is-missing flag
