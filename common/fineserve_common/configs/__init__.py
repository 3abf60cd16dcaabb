"""Each task family's config: JSON round-trippable and checked against the bounds table when built. The engine
trains from them; the front door builds them from a request, so a request is checked once, before it queues."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..tasks import TABULAR, TEXT, VISION, task
from .recipe import BaseWeights, Stage
from .tabular import CollabConfig, EmbeddingRecipe, RatingsFormat, TabularConfig
from .text import TextConfig
from .vision import FineTuneConfig

JobConfig = FineTuneConfig | TextConfig | CollabConfig | TabularConfig

__all__ = ["BaseWeights", "CollabConfig", "EmbeddingRecipe", "FineTuneConfig", "JobConfig", "RatingsFormat",
           "Stage", "TabularConfig", "TextConfig", "config_from_dict"]


def config_from_dict(task_name: str, data: Mapping[str, Any]) -> JobConfig:
    """The config of a task from its JSON (to_dict()); the task's name fills the config's task field where the
    family keeps one."""
    family = task(task_name).family
    if family == VISION:
        return FineTuneConfig.from_dict({**data, "task": task_name})
    if family == TEXT:
        return TextConfig.from_dict({**data, "task": task_name})
    assert family == TABULAR
    return (CollabConfig if task_name == CollabConfig.task else TabularConfig).from_dict(data)
