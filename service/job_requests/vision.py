"""Image jobs (classification, multi-label, segmentation): a request into the engine's FineTuneConfig."""

from __future__ import annotations

from pathlib import Path

from control.store import TenantStore
from fineserve.v1 import training_pb2
from fineserve_common.configs import FineTuneConfig
from fineserve_common.errors import InvalidArgument
from fineserve_common.names import check_text
from fineserve_common.tasks import Task
from service.job_requests.common import (
    Request,
    arch_of,
    base_weights,
    check_resources,
    dataset_of,
    device,
    numbers,
    recipe,
    stages,
)


def vision_config(req: Request, task: Task, store: TenantStore,
                  roots: tuple[Path, ...]) -> tuple[FineTuneConfig, str]:
    """(config, dataset directory); a data-parallel fine-tune's batch must give each worker two samples."""
    arch = arch_of(req, task)
    check_resources(req, task)
    dataset, dataset_dir = dataset_of(req, store, task)
    base = base_weights(req.base, task, arch, store, roots)
    hp = req.hyperparameters
    values = recipe(hp, numbers(FineTuneConfig))
    if hp.HasField("flip"):
        values["flip"] = hp.flip
    if hp.HasField("void_code"):
        if task.name != "segmentation":
            raise InvalidArgument("hyperparameters.void_code applies to SEGMENTATION only")
        check_text("hyperparameters.void_code", hp.void_code)
        if hp.void_code and hp.void_code not in dataset.summary.classes:
            raise InvalidArgument(f"hyperparameters.void_code {hp.void_code!r} is not a class of dataset "
                                  f"{dataset.id} (its codes.txt)")
        values["void_code"] = hp.void_code
    cfg = FineTuneConfig(task=task.name, arch=arch, base=base, group_lrs=tuple(hp.group_lrs),
                         stages=stages(hp, sized=True), device=device(req), **values)
    workers = req.resources.workers
    if isinstance(req, training_pb2.CreateFineTuneJobRequest) and workers > 1:
        batch = cfg.batch_for("cpu")  # unset: the smallest default a worker's device may pick
        if batch < 2 * workers:
            named = f"{batch} (the default)" if cfg.batch_size is None else f"{batch}"
            raise InvalidArgument(f"hyperparameters.batch_size={named} is the global batch: {workers} workers need "
                                  f"at least {2 * workers} (2 per worker)")
        if cfg.auto_lr:
            raise InvalidArgument("auto_lr runs the LR range test on one worker: run FindLearningRate, then set "
                                  "hyperparameters.lr for a data-parallel job")
    return cfg, dataset_dir
