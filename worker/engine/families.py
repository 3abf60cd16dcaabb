"""The task registry: each task's TaskJob (job.py), by the task table's name (fineserve_common.tasks). Adding a
task is its family folder's TaskJob and one line here."""

from __future__ import annotations

from pathlib import Path

from fineserve_common.configs import CollabConfig, JobConfig, TabularConfig

from .job import TaskJob
from .tabular.family import CollabJob, TabularJob
from .text.family import ClassifierJob, LanguageModelJob
from .train_loop import OnEvent
from .vision.family import VisionJob

JOBS: dict[str, type[TaskJob]] = {
    "image_classification": VisionJob,
    "multi_label_classification": VisionJob,
    "segmentation": VisionJob,
    "language_model": LanguageModelJob,
    "text_classification": ClassifierJob,
    "collaborative_filtering": CollabJob,
    "tabular": TabularJob,
}


def task_of(cfg: JobConfig) -> str:
    """The task a config trains: its task field, or the tabular family's one task per config class."""
    if isinstance(cfg, CollabConfig):
        return "collaborative_filtering"
    if isinstance(cfg, TabularConfig):
        return "tabular"
    return cfg.task


def job_type(cfg: JobConfig) -> type[TaskJob]:
    return JOBS[task_of(cfg)]


def open_job(cfg: JobConfig, dataset_dir: Path, on_event: OnEvent) -> TaskJob:
    """cfg's task's job on the data set (scanned and checked, nothing built yet)."""
    return job_type(cfg)(cfg, dataset_dir, on_event)
