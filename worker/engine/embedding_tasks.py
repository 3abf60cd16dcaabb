"""The embedding tasks by name, for job runners that receive a task and a JSON config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .collab_training import train_collab
from .embedding_config import CollabConfig, TabularConfig
from .job_setup import Event
from .recommender import Recommender
from .tabular_predictor import TabularPredictor
from .tabular_training import train_tabular
from .train_loop import ignore_event, never_stop

TRAINERS: dict[str, tuple[Any, Callable[..., dict[str, Any]]]] = {
    "collaborative_filtering": (CollabConfig, train_collab),
    "tabular": (TabularConfig, train_tabular),
}
LOADERS: dict[str, Callable[[Path], Any]] = {"collaborative_filtering": Recommender.load,
                                             "tabular": TabularPredictor.load}
"""Card task -> the class that serves it."""


def train_embedding_task(task: str, config: Mapping[str, Any], dataset_dir: str | Path, out_dir: str | Path,
                         on_event: Callable[[Event], None] = ignore_event,
                         should_stop: Callable[[], bool] = never_stop) -> dict[str, Any]:
    if task not in TRAINERS:
        raise ValueError(f"unknown embedding task {task!r}; known: {', '.join(TRAINERS)}")
    config_cls, train = TRAINERS[task]
    return train(config_cls.from_dict(config), dataset_dir, out_dir, on_event=on_event, should_stop=should_stop)
