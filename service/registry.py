"""The filesystem model store plus its index: publishes a job's staged artifacts as name/version."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

from fineserve.v1 import common_pb2, models_pb2, training_pb2
from service.store import Store, now_ts

TASKS = {"image_classification": training_pb2.IMAGE_CLASSIFICATION}


def describe_base(base: dict[str, Any]) -> str:
    """"torchvision ResNet18_Weights.IMAGENET1K_V1 from <cache>", "stored model <dir>", ... as the engine saw it."""
    return str(base.get("description") or base.get("kind", "unknown"))


class Registry:
    def __init__(self, store: Store, data_dir: Path) -> None:
        self._store = store
        self.root = data_dir / "models"
        self.staging = data_dir / "staging"
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()

    def staging_dir(self, job_id: str) -> Path:
        return self.staging / job_id

    async def publish(self, job: training_pb2.Job, card: dict[str, Any]) -> models_pb2.Model:
        """Move the job's staged directory to <name>/<version> (one rename) and index it."""
        name = job.request.model_name
        staged = self.staging_dir(job.id)
        async with self._lock:
            version = self._store.next_model_version(name)
            final = self.root / name / str(version)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, final)
            model = models_pb2.Model(
                ref=common_pb2.ModelRef(name=name, version=version),
                task=TASKS[card["task"]],
                arch=card.get("arch", ""),
                classes=card.get("classes", []),
                base=describe_base(card.get("base", {})),
                metrics={k: float(v) for k, v in card.get("metrics", {}).items()
                         if isinstance(v, int | float)},
                job_id=job.id,
                dataset_id=job.request.dataset_id,
                created_at=now_ts(),
                card_json=json.dumps(card, sort_keys=True),
                size_bytes=sum(f.stat().st_size for f in final.iterdir() if f.is_file()),
            )
            self._store.put_model(model, str(final))
        return model

    def discard_staging(self, job_id: str) -> None:
        shutil.rmtree(self.staging_dir(job_id), ignore_errors=True)

    def delete(self, name: str, version: int) -> list[int]:
        """Delete index rows first (the model stops resolving), then the files."""
        deleted = self._store.delete_models(name, version)
        for _, path in deleted:
            shutil.rmtree(path, ignore_errors=True)
        return [v for v, _ in deleted]
