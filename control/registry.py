"""The filesystem model store plus its index: publishes a job's staged artifacts as name/version.

Files live at models/<tenant>/<name>/<version>; the serving replicas are told a model's path relative to the
models root ("<tenant>/<name>/<version>") as its multiplexed model id, so two tenants' "pets" never meet.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from control.store import DEFAULT_TENANT, LAYOUT_VERSION, Store, now_ts
from fineserve.v1 import common_pb2, models_pb2, training_pb2
from fineserve_common.card import CardSummary
from fineserve_common.errors import FailedPrecondition
from fineserve_common.tasks import task

log = logging.getLogger(__name__)

# Left in the model tree while the pre-tenancy layout is moved under models/default/ (see below).
MIGRATION_MARKER = ".tenancy-migration"


class Registry:
    def __init__(self, store: Store, data_dir: Path) -> None:
        self._store = store
        self.root = data_dir / "models"
        self.staging = data_dir / "staging"
        if store.schema_version < LAYOUT_VERSION:
            self.migrate_legacy_layout()
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()
        # serving_id is on every inference call's path and resolving costs a syscall per path component;
        # a model directory is written once (renamed into place), so its id never changes.
        self.serving_id = functools.lru_cache(maxsize=4096)(self._serving_id)

    def staging_dir(self, job_id: str) -> Path:
        return self.staging / job_id

    async def publish(self, job: training_pb2.Job, card: dict[str, Any]) -> models_pb2.Model:
        """Move the job's staged directory to <name>/<version> (one rename) and index it."""
        name = job.request.model_name
        tenant = job.tenant or DEFAULT_TENANT
        staged = self.staging_dir(job.id)
        summary = CardSummary.of(card)
        async with self._lock:
            version = self._store.next_model_version(name, tenant=tenant)
            final = self.root / tenant / name / str(version)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, final)
            model = models_pb2.Model(
                ref=common_pb2.ModelRef(name=name, version=version),
                task=training_pb2.Task.Value(task(summary.task).enum),
                arch=summary.arch,
                classes=summary.classes,
                base=summary.base,
                metrics=summary.metrics,
                job_id=job.id,
                dataset_id=job.request.dataset_id,
                created_at=now_ts(),
                card_json=json.dumps(card, sort_keys=True),
                size_bytes=sum(f.stat().st_size for f in final.iterdir() if f.is_file()),
                tenant=tenant,
            )
            self._store.put_model(model, str(final))
        return model

    def discard_staging(self, job_id: str) -> None:
        shutil.rmtree(self.staging_dir(job_id), ignore_errors=True)

    def delete(self, name: str, version: int, tenant: str) -> list[int]:
        """Delete index rows first (the model stops resolving), then the files."""
        deleted = self._store.delete_models(name, version, tenant=tenant)
        for _, path in deleted:
            shutil.rmtree(path, ignore_errors=True)
        return [v for v, _ in deleted]

    def _serving_id(self, path: str) -> str:
        """The replicas' model id: the model directory relative to the models root."""
        real = Path(path).resolve()
        root = self.root.resolve()
        if root not in real.parents:
            raise FailedPrecondition("the model's files are not in the model store")
        return real.relative_to(root).as_posix()

    def migrate_legacy_layout(self) -> None:
        """Move a pre-tenancy model tree (models/<name>/<version>) to models/default/<name>/<version>.

        The whole tree moves with two renames (models -> models.legacy, then models.legacy -> models/default),
        so a model that happened to be called "default" cannot collide with the new tenant directory. A marker
        file inside the tree tells an interrupted run where it stopped; the store records the new paths and
        the schema version in one transaction at the end. Idempotent, crash-safe at every step.
        """
        pending = self.root.with_name("models.legacy")
        moved_root = self.root / DEFAULT_TENANT
        if pending.exists():  # stopped between the two renames
            self.root.mkdir(parents=True, exist_ok=True)
            os.rename(pending, moved_root)
        elif not (moved_root / MIGRATION_MARKER).exists() and self.root.exists():
            (self.root / MIGRATION_MARKER).write_text("moving models/<name>/<version> to models/default/\n")
            os.rename(self.root, pending)
            self.root.mkdir(parents=True)
            os.rename(pending, moved_root)
        old_root = self.root.resolve()
        moved = []
        for tenant, name, version, path in self._store.model_paths():
            p = Path(path)
            if p.parent.parent.resolve() == old_root and p.parent.name == name:  # models/<name>/<version>
                moved.append((tenant, name, version, str(moved_root / name / p.name)))
        self._store.finish_layout_migration(moved)
        (moved_root / MIGRATION_MARKER).unlink(missing_ok=True)
        if moved:
            log.info("moved %d pre-tenancy model(s) to %s (tenant %r)", len(moved), moved_root, DEFAULT_TENANT)
