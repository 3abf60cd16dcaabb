"""COLLABORATIVE_FILTERING and TABULAR jobs: a request into the engine's CollabConfig or TabularConfig. These
models train from scratch with one 1cycle, so the transfer-learning knobs are refused, not ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control.store import TenantStore
from fineserve.v1 import training_pb2
from fineserve_common.bounds import check, check_choice
from fineserve_common.configs import CollabConfig, RatingsFormat, TabularConfig
from fineserve_common.configs.tabular import SPLITS, check_columns, check_separator
from fineserve_common.errors import InvalidArgument
from fineserve_common.names import check_relative_path, check_text, clip
from fineserve_common.tasks import COLLABORATIVE_FILTERING, Task
from service.job_requests.common import (
    Request,
    arch_of,
    bounded,
    check_from_scratch,
    check_resources,
    dataset_of,
    device,
    keep,
    numbers,
    precision,
    refused,
)


def tabular_config(req: Request, task: Task, store: TenantStore,
                   roots: tuple[Path, ...]) -> tuple[CollabConfig | TabularConfig, str]:
    assert isinstance(req, training_pb2.CreateFineTuneJobRequest), "FindLearningRate is not offered for these"
    arch = arch_of(req, task)
    check_from_scratch(req.base, task)
    check_resources(req, task)
    _, dataset_dir = dataset_of(req, store, task)
    config = CollabConfig if task.name == COLLABORATIVE_FILTERING else TabularConfig
    hp = req.hyperparameters
    takes = numbers(config)
    wrong = refused(hp, config)
    if wrong:
        raise InvalidArgument(f"hyperparameters {', '.join(wrong)} do not apply to embedding models (they use "
                              f"{', '.join(takes)}, precision, keep)")
    values = bounded(hp, takes, "hyperparameters") | {"device": device(req)} | keep(hp)
    if hp.precision != training_pb2.PRECISION_AUTO:  # these configs default to fp32, not auto
        values["precision"] = precision(hp)
    root = Path(dataset_dir)
    if config is CollabConfig:
        return CollabConfig(arch=arch, **values, **_collab(req.collab, root)), dataset_dir
    return TabularConfig(**values, **_tabular(req.tabular, root)), dataset_dir


def _file(root: Path, name: str, field: str) -> str:
    """A file named relative to the data set (a usable name, checked first), which must stay inside it."""
    if name:
        check_relative_path(field, name)
        try:
            path = (root / name).resolve()
            inside = root.resolve() in path.parents and path.is_file()
        except (OSError, RuntimeError):  # a link loop, a component the file system refuses
            inside = False
        if not inside:
            raise InvalidArgument(f"{field} {clip(name)} is not a file inside the dataset")
    return name


def _separator(value: str, field: str) -> str:
    return check_separator(field, value)


def _column(o: training_pb2.CollabOptions, name: str) -> str:
    return check_text(f"collab.{name}", getattr(o, name))


def _collab(o: training_pb2.CollabOptions, root: Path) -> dict[str, Any]:
    """CollabConfig's fields; 0 or empty options keep the config's defaults."""
    ratings = RatingsFormat(
        ratings_file=_file(root, o.ratings_file, "collab.ratings_file"),
        separator=_separator(o.separator, "collab.separator"), user_column=_column(o, "user_column"),
        item_column=_column(o, "item_column"), rating_column=_column(o, "rating_column"),
        timestamp_column=_column(o, "timestamp_column"), items_file=_file(root, o.items_file, "collab.items_file"),
        items_separator=_separator(o.items_separator, "collab.items_separator"),
        item_id_column=_column(o, "item_id_column"), title_column=_column(o, "title_column"))
    values: dict[str, Any] = {"ratings": ratings, "y_range": tuple(o.y_range)}
    if o.n_factors:
        values["n_factors"] = check("n_factors", o.n_factors, "collab")
    if o.split:
        values["split"] = check_choice("split", o.split, SPLITS, "collab")
    if o.layers:
        values["layers"] = tuple(o.layers)
    return values


def _tabular(o: training_pb2.TabularOptions, root: Path) -> dict[str, Any]:
    """TabularConfig's fields; unset options keep the config's defaults."""
    if not o.target:
        raise InvalidArgument("tabular.target is required: the column to predict")
    check_text("tabular.target", o.target)
    check_columns("tabular.categorical", tuple(o.categorical))
    check_columns("tabular.continuous", tuple(o.continuous))
    columns = [o.target, *o.categorical, *o.continuous]
    if len(set(columns)) != len(columns):
        raise InvalidArgument("tabular: a column may be only one of target, categorical and continuous")
    values: dict[str, Any] = {"target": o.target, "categorical": tuple(o.categorical),
                              "continuous": tuple(o.continuous), "data_file": _file(root, o.data_file,
                                                                                      "tabular.data_file"),
                              "separator": _separator(o.separator, "tabular.separator"),
                              **bounded(o, ("dropout",), "tabular")}
    if o.HasField("regression"):
        values["regression"] = o.regression
    if o.layers:
        values["layers"] = tuple(o.layers)
    return values
