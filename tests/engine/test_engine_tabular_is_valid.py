"""The CSV layouts' is_valid column (ratings and tabular), as the image layouts take it: the rows it marks are
the validation set (valid_pct and the time split are not used), it is never a feature, the target or a rating
column, and a value other than true/false/1/0 or a column marking no row or every row is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fineserve_common.configs import RatingsFormat
from worker.engine import CollabConfig, DatasetError, TabularConfig, TabularPredictor, fine_tune
from worker.engine.tabular.ratings import read_ratings, split_ratings


def _table(root: Path, flags: list[str]) -> Path:
    """age, job, is_valid, salary: job "z" only on rows marked for validation; "n" of salary on odd ages."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [f"{20 + i},{'z' if flags[i] in ('true', '1', 'TRUE') else 'ab'[i % 2]},{flags[i]},{'ny'[i % 2]}"
            for i in range(len(flags))]
    (root / "adult.csv").write_text("\n".join(["age,job,is_valid,salary", *rows]) + "\n")
    return root


def test_the_table_splits_by_its_is_valid_column(tmp_path: Path) -> None:
    flags = ["false", "0", "true", "False", "1", "0", "0", "false", "TRUE", "0"]
    cfg = TabularConfig(target="salary", epochs=1, batch_size=4, valid_pct=0.5, device="cpu")
    result = fine_tune(cfg, _table(tmp_path / "data", flags), tmp_path / "model")
    card = result.card
    assert card["dataset"] == {"train_rows": 7, "valid_rows": 3}  # not valid_pct's 5 / 5
    schema = card["schema"]
    assert (schema["categorical"], schema["continuous"]) == (["job"], ["age"])  # is_valid is not a feature
    assert schema["vocabularies"]["job"] == ["#unknown", "a", "b"]  # the "z" rows were all held out
    # a served row may carry the column, as a training row does; it is ignored
    predictor = TabularPredictor.load(tmp_path / "model", "cpu")
    row = {"age": "30", "job": "a"}
    assert predictor.predict([{**row, "is_valid": "true"}]) == predictor.predict([row])


@pytest.mark.parametrize(("flags", "options", "message"), [
    (["0", "yes", "1"], {}, "data row 2: is_valid must be true/false or 1/0, got 'yes'"),
    (["0", "0", "false"], {}, "marks no row as validation"),
    (["1", "true", "1"], {}, "marks every row as validation"),
    (["0", "1", "0"], {"categorical": ("job", "is_valid")}, "cannot be the target or a feature"),
])
def test_a_bad_is_valid_column_is_refused(tmp_path: Path, flags: list[str], options: dict, message: str) -> None:
    cfg = TabularConfig(target="salary", epochs=1, device="cpu", **options)
    with pytest.raises(DatasetError, match=message):
        fine_tune(cfg, _table(tmp_path / "data", flags), tmp_path / "model")


def test_ratings_split_by_their_is_valid_column(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    flags = [i % 4 == 3 for i in range(16)]
    lines = [f"u{i % 5},m{i % 7},{1 + i % 5},{'true' if flag else 'false'}" for i, flag in enumerate(flags)]
    (root / "ratings.csv").write_text("\n".join(["user,movie,rating,is_valid", *lines]) + "\n")
    data = read_ratings(root, RatingsFormat())
    assert data.timestamps is None  # the fourth column is the split, not a timestamp
    marked = np.array(flags)
    for valid_pct, by_time in ((0.5, False), (0.1, True)):  # neither the share nor the time split is used
        train, valid = split_ratings(data, valid_pct, 0, by_time)
        assert (valid.tolist(), train.tolist()) == (np.flatnonzero(marked).tolist(), np.flatnonzero(~marked).tolist())
    result = fine_tune(CollabConfig(epochs=1, batch_size=4, n_factors=4, device="cpu"), root, tmp_path / "model")
    assert (result.card["dataset"]["train_ratings"], result.card["dataset"]["valid_ratings"]) == (12, 4)
    with pytest.raises(DatasetError, match="cannot be the user, item, rating or timestamp column"):
        read_ratings(root, RatingsFormat(rating_column="is_valid"))
