"""LANGUAGE_MODEL and TEXT_CLASSIFICATION jobs: a request into the engine's TextConfig. The hyperparameters
that only image jobs take are refused, not ignored."""

from __future__ import annotations

from pathlib import Path

from control.store import TenantStore
from fineserve.v1 import training_pb2
from fineserve_common.configs import TextConfig
from fineserve_common.errors import InvalidArgument
from fineserve_common.tasks import TEXT_CLASSIFICATION, Task
from service.job_requests.common import (
    Request,
    arch_of,
    base_weights,
    bounded,
    check_resources,
    dataset_of,
    device,
    numbers,
    recipe,
    refused,
    stages,
)

TEXT_OPTIONS = tuple(f.name for f in training_pb2.TextOptions.DESCRIPTOR.fields)
"""Each TextOptions field is the TextConfig field (and the bound) of the same name."""


def text_config(req: Request, task: Task, store: TenantStore, roots: tuple[Path, ...]) -> tuple[TextConfig, str]:
    arch = arch_of(req, task)
    check_resources(req, task)
    dataset, dataset_dir = dataset_of(req, store, task)
    if task.name == TEXT_CLASSIFICATION and len(dataset.summary.classes) < 2:
        raise InvalidArgument(f"dataset {dataset.id} has {len(dataset.summary.classes)} label(s); a classifier "
                              "needs 2+")
    base = base_weights(req.base, task, arch, store, roots)
    hp = req.hyperparameters
    wrong = refused(hp, TextConfig)
    if "group_lrs" in wrong:
        raise InvalidArgument("group_lrs does not apply to text jobs: their groups' rates follow "
                              "text.group_lr_ratio")
    if wrong:
        raise InvalidArgument(f"hyperparameters.{wrong[0]} does not apply to text jobs")
    values = recipe(hp, numbers(TextConfig)) | bounded(req.text, TEXT_OPTIONS, "text")
    cfg = TextConfig(task=task.name, base=base, stages=stages(hp, sized=False), device=device(req), **values)
    return cfg, dataset_dir
