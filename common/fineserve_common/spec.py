"""The job spec: what the front door checked and the worker runs, built once when the job is created and stored
with it (the control plane re-queues a job from its stored spec and never rebuilds it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from .configs import JobConfig, config_from_dict

FINE_TUNE = "fine_tune"
FIND_LR = "find_lr"


@dataclass(frozen=True)
class LrRange:
    """The LR range test's sweep; freeze_to None = the first stage's depth."""

    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_batches: int = 100
    freeze_to: int | None = None


@dataclass(frozen=True)
class JobSpec:
    kind: str
    """FINE_TUNE or FIND_LR."""
    task: str
    """tasks.Task.name."""
    config: JobConfig
    dataset_dir: str
    out_dir: str = ""
    """Fine-tunes: the staging directory the model (and each epoch's checkpoint) is written to."""
    workers: int = 1
    """Data-parallel workers (fine-tunes of data-parallel tasks)."""
    lr_range: LrRange | None = None
    """FIND_LR: the sweep."""
    heartbeat_s: float = 30.0
    """The worker sends a heartbeat when it has said nothing else for this long (the control plane's lease)."""
    max_image_pixels: int | None = None
    """The server's decompression-bomb limit, applied to the data set's images too."""

    def with_runtime(self, heartbeat_s: float, max_image_pixels: int | None) -> JobSpec:
        """The spec as this control plane runs it (its lease and image limit)."""
        return replace(self, heartbeat_s=heartbeat_s, max_image_pixels=max_image_pixels)

    def to_json(self) -> str:
        data = asdict(self)
        data["config"] = self.config.to_dict()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        data: dict[str, Any] = json.loads(text)
        data["config"] = config_from_dict(data["task"], data["config"])
        if data.get("lr_range") is not None:
            data["lr_range"] = LrRange(**data["lr_range"])
        return cls(**data)
