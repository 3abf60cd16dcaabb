"""The task registry: for each task of the task table (fineserve_common.tasks), the TaskJob (job.py) that trains
it and the class that serves its stored models. Adding a task is its family folder and one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fineserve_common.configs import JobConfig
from fineserve_common.tasks import (
    COLLABORATIVE_FILTERING,
    IMAGE_CLASSIFICATION,
    LANGUAGE_MODEL,
    MULTI_LABEL,
    SEGMENTATION,
    TABULAR_MODEL,
    TEXT_CLASSIFICATION,
)

from .errors import EngineError
from .job import TaskJob
from .model_card import read_model_card
from .tabular.family import CollabJob, TabularJob
from .tabular.predictor import TabularPredictor
from .tabular.recommender import Recommender
from .text.classifier import TextClassifierModel
from .text.family import ClassifierJob, LanguageModelJob
from .train_loop import OnEvent
from .vision.classifier import ImageClassifier
from .vision.family import VisionJob
from .vision.multi_label_classifier import MultiLabelClassifier
from .vision.segmenter import ImageSegmenter


@dataclass(frozen=True)
class Registered:
    job: type[TaskJob]
    served_by: Callable[[str | Path, str], Any] | None
    """Loads a stored model for a serving replica (model_dir, device); None for a model that only other tasks
    build on (a language model is a classifier's base)."""


TASKS: dict[str, Registered] = {
    IMAGE_CLASSIFICATION: Registered(VisionJob, ImageClassifier.load),
    MULTI_LABEL: Registered(VisionJob, MultiLabelClassifier.load),
    SEGMENTATION: Registered(VisionJob, ImageSegmenter.load),
    LANGUAGE_MODEL: Registered(LanguageModelJob, None),
    TEXT_CLASSIFICATION: Registered(ClassifierJob, TextClassifierModel.load),
    COLLABORATIVE_FILTERING: Registered(CollabJob, Recommender.load),
    TABULAR_MODEL: Registered(TabularJob, TabularPredictor.load),
}


def job_type(cfg: JobConfig) -> type[TaskJob]:
    return TASKS[cfg.task].job


def open_job(cfg: JobConfig, dataset_dir: Path, on_event: OnEvent) -> TaskJob:
    """cfg's task's job on the data set (scanned and checked, nothing built yet)."""
    return job_type(cfg)(cfg, dataset_dir, on_event)


def load_served_model(model_dir: str | Path, device: str = "auto") -> Any:
    """The serving class of the model directory's task (its card says which), loaded on device."""
    task = read_model_card(model_dir).get("task")
    served_by = TASKS[task].served_by if task in TASKS else None
    if served_by is None:
        raise EngineError(f"{model_dir} holds a {task!r} model, which no fineserve engine serves")
    return served_by(model_dir, device)
