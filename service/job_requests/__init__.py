"""The one job request checker: a CreateFineTuneJobRequest or FindLearningRateRequest into the typed
fineserve_common.spec.JobSpec the control plane stores and the worker runs.

Checked here, before anything queues, so a caller hears of a bad field at once (INVALID_ARGUMENT, NOT_FOUND)
and never from a job that fails minutes later: the family's config is built here, so its own validation (the
engine's) runs at the door too. Raises fineserve_common.errors only; the servicer maps them to gRPC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from control.store import TenantStore
from fineserve.v1 import training_pb2
from fineserve_common.configs import JobConfig, TextConfig
from fineserve_common.errors import InvalidArgument, Unimplemented
from fineserve_common.names import clip
from fineserve_common.spec import FIND_LR, FINE_TUNE, JobSpec
from fineserve_common.tasks import RESNET_GROUPS, TABULAR, TEXT, VISION
from service.ids import MODEL_NAME
from service.job_requests.common import check_options, lr_range, task_of
from service.job_requests.tabular import tabular_config
from service.job_requests.text import text_config
from service.job_requests.vision import vision_config

__all__ = ["find_lr_spec", "fine_tune_spec"]

FAMILIES: dict[str, Callable[..., tuple[JobConfig, str]]] = {
    VISION: vision_config, TEXT: text_config, TABULAR: tabular_config}
"""Each task family's (request, task, store, roots) -> (config, dataset directory)."""


def fine_tune_spec(req: training_pb2.CreateFineTuneJobRequest, store: TenantStore, roots: tuple[Path, ...],
                   out_dir: Path) -> JobSpec:
    """The spec of a fine-tune writing its model to out_dir (the registry's staging directory for the job).
    Ids in the request (dataset, base model) resolve among the caller's own only: store is a TenantStore."""
    if not MODEL_NAME.match(req.model_name):
        raise InvalidArgument(f"model_name {clip(req.model_name)} must match {MODEL_NAME.pattern}")
    task = task_of(req)
    check_options(req, task)
    config, dataset_dir = FAMILIES[task.family](req, task, store, roots)
    return JobSpec(FINE_TUNE, task.name, config, dataset_dir, str(out_dir), max(req.resources.workers, 1))


def find_lr_spec(req: training_pb2.FindLearningRateRequest, store: TenantStore, roots: tuple[Path, ...]) -> JobSpec:
    """The spec of an LR range test, on the model and batches the same fine-tune request would train."""
    task = task_of(req)
    if not task.find_lr:
        raise Unimplemented.planned(f"FindLearningRate for {task.enum}", "a later issue")
    check_options(req, task)
    config, dataset_dir = FAMILIES[task.family](req, task, store, roots)
    n_groups = config.n_groups if isinstance(config, TextConfig) else RESNET_GROUPS
    return JobSpec(FIND_LR, task.name, config, dataset_dir, lr_range=lr_range(req, n_groups))

