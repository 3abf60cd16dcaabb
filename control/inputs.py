"""What a job reads besides its spec, and whether it is all still there.

The front door checked every input when the job was created, but a job may wait in the queue, run for hours
and be re-queued across restarts: in the meantime its owner may delete the data set or the base model, an
operator may remove an allowed root or the weights file in it. The job manager asks missing_input before each
run of a job and at each epoch, and when a worker fails, so such a job fails with a message naming what went
missing, and only that job: nothing about one job's inputs may stop the control plane.
"""

from __future__ import annotations

from pathlib import Path

from control.store import DEFAULT_TENANT, Store
from fineserve.v1 import training_pb2
from fineserve_common.configs import CollabConfig, TabularConfig
from fineserve_common.spec import FINE_TUNE, JobSpec

RESUBMIT = "; submit the job again once it is back"


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    real = path.resolve()
    return any(real == r or r in real.parents for r in roots)


def _dataset(store: Store, job: training_pb2.Job, spec: JobSpec, roots: tuple[Path, ...] | None) -> str:
    dataset_id = job.request.dataset_id if job.kind == FINE_TUNE else job.lr_request.dataset_id
    found = store.get_dataset(dataset_id, tenant=job.tenant or DEFAULT_TENANT) if dataset_id else None
    if dataset_id and found is None:
        return f"input gone: data set {dataset_id} was deleted" + RESUBMIT
    where = Path(spec.dataset_dir)
    if not where.is_dir():
        return f"input gone: data set {dataset_id}'s files ({where}) are no longer there" + RESUBMIT
    if roots is not None and found is not None and found[0].source == "registered" and not _inside(where, roots):
        return (f"input refused: data set {dataset_id} ({where}) is no longer under an allowed root "
                "(--allowed-root); register it from an allowed root and submit the job again")
    config = spec.config
    named = ({"collab.ratings_file": config.ratings.ratings_file, "collab.items_file": config.ratings.items_file}
             if isinstance(config, CollabConfig) else
             {"tabular.data_file": config.data_file} if isinstance(config, TabularConfig) else {})
    for field, name in named.items():
        if name and not (where / name).is_file():
            return f"input gone: {field} {name!r} is no longer in data set {dataset_id}" + RESUBMIT
    return ""


def _base(spec: JobSpec, roots: tuple[Path, ...] | None) -> str:
    base = getattr(spec.config, "base", None)
    if base is None or base.kind not in ("file", "store"):
        return ""
    where = Path(base.path)
    if base.kind == "store":
        return "" if where.is_dir() else f"input gone: base model {base.name} was deleted" + RESUBMIT
    if not where.exists():
        return f"input gone: base.weights_file {where} is no longer there" + RESUBMIT
    if roots is not None and not _inside(where, roots):
        return (f"input refused: base.weights_file {where} is no longer under an allowed root (--allowed-root); "
                "submit the job again with a file from an allowed root")
    return ""


def missing_input(store: Store, job: training_pb2.Job, spec: JobSpec, roots: tuple[Path, ...] | None) -> str:
    """"" when everything job reads is still there (and, with roots, still under an allowed root); else why not,
    naming the input and what to do. roots None: paths are not re-checked against the roots."""
    try:
        return _dataset(store, job, spec, roots) or _base(spec, roots)
    except (OSError, RuntimeError, ValueError) as e:  # a path that cannot be looked at (permissions, a link loop)
        return f"input unreadable: {e}" + RESUBMIT
