"""Per-epoch checkpoints in out_dir/checkpoint/: state.safetensors (model, optimizer tensors, RNG states) and
state.json (everything else). No pickle, so a checkpoint, like a model, cannot run code when loaded.

A new checkpoint is written to a temporary directory and swapped in by renames, so a crash leaves either the
old or the new one complete; loading falls back to the old one if the crash came between the two renames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from fineserve_common.configs import JobConfig
from fineserve_common.events import LrFinderResult

CHECKPOINT_DIR = "checkpoint"
_NEW = ".checkpoint.new"
_OLD = ".checkpoint.old"
TENSORS_FILE = "state.safetensors"
STATE_FILE = "state.json"
VERSION = 1


@dataclass
class TrainingState:
    """A job after its last finished epoch: enough to continue it exactly where it stopped."""

    stage: int
    """Index of the stage the epoch belonged to."""
    epoch: int
    """Epochs finished over the whole job (1-based numbering: the last finished one)."""
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    """torch's optimizer state dict of that stage's optimizer."""
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    early_stopping: dict[str, Any]
    history: list[dict[str, float]]
    """Validation metrics of every finished epoch."""
    rng: dict[str, torch.Tensor]
    """torch's CPU generator state ("cpu") and, on GPU jobs, the device's ("cuda")."""
    lr_finder: LrFinderResult | None = None
    """The auto_lr range test's result, so a resumed job does not run it again."""
    best: dict[str, Any] | None = None
    """The epoch the job keeps so far (early_stopping.BestEpoch's state)."""
    best_model: dict[str, torch.Tensor] | None = None
    """That epoch's weights when it is not this one (None: `model` is the kept epoch's)."""


def job_fingerprint(cfg: JobConfig, classes: Any) -> str:
    """What a checkpoint must match to be resumed: the requested configuration and the class list (a language
    model's: its vocabulary; a table's: its schema), as JSON."""
    text = json.dumps({"config": cfg.to_dict(), "classes": classes}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's generator states that a job draws from: dropout, augmentation without workers, mixup."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors of torch's optimizer state dict under "optimizer.<param>.<name>"; the rest as JSON."""
    tensors: dict[str, torch.Tensor] = {}
    other: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                other.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "other_state": other}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            index, name = key.removeprefix("optimizer.").split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["other_state"].items():
        state.setdefault(int(index), {}).update(values)
    # JSON turned tuples (AdamW's betas) into lists; give optimizers back what they wrote.
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _write(directory: Path, state: TrainingState, fingerprint: str) -> None:
    opt_tensors, opt_meta = _flatten_optimizer(state.optimizer)
    tensors = {**{f"model.{k}": v for k, v in state.model.items()}, **opt_tensors,
               **{f"rng.{k}": v for k, v in state.rng.items()},
               **{f"best.{k}": v for k, v in (state.best_model or {}).items()}}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    safetensors.torch.save_file(tensors, directory / TENSORS_FILE)
    meta = {"version": VERSION, "fingerprint": fingerprint, "stage": state.stage, "epoch": state.epoch,
            "optimizer": opt_meta, "scheduler": state.scheduler, "scaler": state.scaler,
            "early_stopping": state.early_stopping, "history": state.history,
            "lr_finder": dataclasses.asdict(state.lr_finder) if state.lr_finder else None, "best": state.best}
    (directory / STATE_FILE).write_text(json.dumps(meta), encoding="utf-8")


def save_checkpoint(out_dir: Path, state: TrainingState, fingerprint: str) -> Path:
    """Replace out_dir/checkpoint with state; returns the checkpoint directory."""
    final, new, old = out_dir / CHECKPOINT_DIR, out_dir / _NEW, out_dir / _OLD
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    _write(new, state, fingerprint)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _read(directory: Path, fingerprint: str) -> TrainingState:
    meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint format version {meta.get('version')!r}, expected {VERSION}")
    if meta["fingerprint"] != fingerprint:
        raise ValueError("it was made for another configuration or class list")
    tensors = safetensors.torch.load_file(directory / TENSORS_FILE)
    return TrainingState(
        stage=meta["stage"], epoch=meta["epoch"],
        model={k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")},
        optimizer=_unflatten_optimizer(tensors, meta["optimizer"]), scheduler=meta["scheduler"],
        scaler=meta["scaler"], early_stopping=meta["early_stopping"], history=meta["history"],
        rng={k.removeprefix("rng."): v for k, v in tensors.items() if k.startswith("rng.")},
        lr_finder=_lr_finder(meta["lr_finder"]), best=meta.get("best"),
        best_model={k.removeprefix("best."): v for k, v in tensors.items() if k.startswith("best.")} or None)


def _lr_finder(data: dict[str, Any] | None) -> LrFinderResult | None:
    """The range test's result from JSON, its points tuples again (as a fresh test's)."""
    if data is None:
        return None
    return LrFinderResult([(lr, loss) for lr, loss in data["points"]], data["suggestions"], data["diverged"])


def load_checkpoint(out_dir: Path, fingerprint: str, log: Callable[[str], None]) -> TrainingState | None:
    """The checkpoint in out_dir if there is one made for this job; otherwise None (saying why when one is
    ignored, since the job then starts over)."""
    directory = next((d for d in (out_dir / CHECKPOINT_DIR, out_dir / _OLD) if (d / STATE_FILE).is_file()), None)
    if directory is None:
        return None
    try:
        return _read(directory, fingerprint)
    except Exception as e:  # unreadable, foreign or corrupt: all mean "start over"
        log(f"ignoring the checkpoint in {directory}: {e}")
        return None


def remove_checkpoint(out_dir: Path) -> None:
    """Once the model is written the checkpoint is spent; out_dir keeps only the model's files."""
    for name in (CHECKPOINT_DIR, _NEW, _OLD):
        shutil.rmtree(out_dir / name, ignore_errors=True)
