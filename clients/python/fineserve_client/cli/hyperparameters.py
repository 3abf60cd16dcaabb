"""Every ``Hyperparameters`` field from the command line: the common ones as flags (``--epochs``, ``--lr``, ...),
the long tail as ``--set KEY=VALUE``. Each value is typed by its proto field and checked before any call: the key
against the fields the task's family takes (a typo gets "did you mean"), the number against the one bounds table
(``fineserve_common.bounds``, the message names the bound), and the whole against the family's own config
(``fineserve_common.configs``), which the front door builds from the same request; so the command refuses what
the door would refuse, in the door's words, without a round trip."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from fineserve.v1 import training_pb2
from fineserve_common.bounds import check
from fineserve_common.configs import BaseWeights, CollabConfig, FineTuneConfig, Stage, TabularConfig, TextConfig
from fineserve_common.configs.recipe import EARLY_STOPPING_METRICS
from fineserve_common.errors import InvalidArgument
from fineserve_common.tasks import (
    COLLABORATIVE_FILTERING,
    MULTI_LABEL,
    PRECISIONS,
    SEGMENTATION,
    TABULAR_MODEL,
    TEXT,
    VISION,
    Task,
)

from ..arguments import parse_base, set_options
from .choices import UsageError, normal, pick, unknown

_FIELDS = training_pb2.Hyperparameters.DESCRIPTOR.fields_by_name
EARLY_STOPPING = {"metric": "early_stopping_metric", "patience": "early_stopping_patience",
                  "min_delta": "early_stopping_min_delta"}
"""early_stopping's parts, as --set names them (early_stopping.PART), and the config field and bound of each."""
KEYS = tuple(n for n in _FIELDS if n != "early_stopping") + tuple(f"early_stopping.{p}" for p in EARLY_STOPPING)
"""What --set takes: every Hyperparameters field, early stopping's by its parts."""
FLAGS = ("epochs", "freeze_epochs", "lr", "batch_size", "image_size", "precision", "fbeta_beta", "void_code",
         "auto_lr")
"""The Hyperparameters fields that are flags of their own (--freeze-epochs for freeze_epochs)."""
CONFIGS: dict[str, type] = {VISION: FineTuneConfig, TEXT: TextConfig, COLLABORATIVE_FILTERING: CollabConfig,
                            TABULAR_MODEL: TabularConfig}
"""The config the front door builds for a task (by name) or its family."""
LR_FIND_UNUSED = frozenset({"epochs", "lr", "lr_mult", "group_lrs", "auto_lr", "pct_start", "div_factor",
                            "final_div_factor", "keep", "early_stopping.metric", "early_stopping.patience",
                            "early_stopping.min_delta"})
"""Settings an LR range test takes (it builds the fine-tune's config) and does not use: its rates are its own,
it runs no 1cycle and stores no model. freeze_epochs and stages still choose its freeze depth."""
SET_HELP = ("a Hyperparameters field (repeatable): " + ", ".join(KEYS) + ". Lists are comma-separated "
            "(group_lrs=1e-5,1e-4,1e-3); stages=EPOCHS:FREEZE_TO[:IMAGE_SIZE[:LR]],... (e.g. 1:2,2:0:128)")

Values = dict[str, tuple[str, Any]]
"""Hyperparameter key -> (where it came from, e.g. "--lr" or "--set lr", its typed value)."""


def config_of(task: Task) -> type:
    return CONFIGS.get(task.name) or CONFIGS[task.family]


def taken(task: Task) -> tuple[str, ...]:
    """The Hyperparameters fields the task's jobs take, as the front door reads them: those named as a field of
    its config (early_stopping feeds the early_stopping_* ones); void_code is segmentation's only."""
    names = {f.name for f in dataclasses.fields(config_of(task))}
    return tuple(n for n in _FIELDS if (n in names or (n == "early_stopping" and "early_stopping_metric" in names))
                 and (n != "void_code" or task.name == SEGMENTATION))


# -- typed values ----------------------------------------------------------------------------------------


def _number(convert: Callable[[str], Any], noun: str) -> Callable[[str, str], Any]:
    def parse(origin: str, text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise UsageError(f"{origin} must be {noun}, got {text!r}") from None

    return parse


_int = _number(int, "an integer")
_float = _number(float, "a number")


def _bool(origin: str, text: str) -> bool:
    value = normal(text)
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise UsageError(f"{origin} must be true or false, got {text!r}")
    return value in ("true", "1", "yes")


def check_bound(origin: str, name: str, value: Any, bound: str | None = None) -> Any:
    """value within the bound of ``bound or name``; the refusal names the bound, e.g. "lr=20 is outside (0, 10]"."""
    try:
        return check(name, value, bound=bound)
    except InvalidArgument as e:
        raise UsageError(f"{origin}: {e.message}") from None


def _stages(origin: str, text: str) -> list[dict[str, Any]]:
    """EPOCHS:FREEZE_TO[:IMAGE_SIZE[:LR]] per stage, comma-separated; 0 image size or lr: the config's rule."""
    stages = []
    for i, part in enumerate(p for p in text.split(",") if p.strip()):
        items = part.strip().split(":")
        if not 2 <= len(items) <= 4:
            raise UsageError(f"{origin}: stage {part!r} must be EPOCHS:FREEZE_TO[:IMAGE_SIZE[:LR]]")
        where = f"{origin} stage {i}"
        stage = {"epochs": check_bound(where, "epochs", _int(where, items[0]), "stage_epochs"),
                 "freeze_to": _int(where, items[1])}
        if stage["freeze_to"] < 0:
            raise UsageError(f"{where}: freeze_to must be >= 0, got {stage['freeze_to']}")
        if len(items) > 2 and (size := _int(where, items[2])):
            stage["image_size"] = check_bound(where, "image_size", size)
        if len(items) > 3:
            stage["lr"] = check_bound(where, "lr", _float(where, items[3]), "stage_lr")
        stages.append(stage)
    check_bound(origin, "len(stages)", len(stages), "n_stages")
    return stages


def typed(key: str, text: str, origin: str) -> Any:
    """The value of one --set KEY=VALUE, typed as its field and within its bound."""
    if key.startswith("early_stopping."):
        part = key.partition(".")[2]
        if part == "metric":
            return pick("early_stopping.metric", text, tuple(m for m in EARLY_STOPPING_METRICS if m))
        convert = _int if part == "patience" else _float
        return check_bound(origin, key, convert(origin, text), EARLY_STOPPING[part])
    if key == "stages":
        return _stages(origin, text)
    if key == "group_lrs":
        return [check_bound(origin, f"group_lrs[{i}]", _float(origin, v), "group_lr")
                for i, v in enumerate(v for v in text.split(",") if v.strip())]
    field = _FIELDS[key]
    if field.type == FieldDescriptor.TYPE_ENUM:
        return pick("precision", text, PRECISIONS)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _bool(origin, text)
    if field.type == FieldDescriptor.TYPE_STRING:
        return text
    convert = _float if field.type == FieldDescriptor.TYPE_DOUBLE else _int
    return check_bound(origin, key, convert(origin, text))


def collect(a: argparse.Namespace) -> Values:
    """The hyperparameters a command line sets: its flags (each within its bound) and its --set pairs; a key given
    twice is refused rather than one silently winning."""
    values: Values = {}
    for name in FLAGS:
        value = getattr(a, name, None)
        if value is None or value is False:
            continue
        origin = "--" + name.replace("_", "-")
        if isinstance(value, int | float) and not isinstance(value, bool):
            check_bound(origin, name, value)
        values[name] = (origin, value)
    for pair in getattr(a, "set", None) or ():
        raw, sep, text = pair.partition("=")
        key = normal(raw)
        if not sep or not key:
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        if key == "early_stopping":
            raise UsageError("early_stopping has parts: --set early_stopping.metric=valid_loss (or accuracy), "
                             "early_stopping.patience=N, early_stopping.min_delta=X")
        if key not in KEYS:
            raise UsageError(unknown("hyperparameter", raw, KEYS))
        origin = f"--set {key}"
        if key in values:
            raise UsageError(f"{origin}: {key} is already set by {values[key][0]}")
        values[key] = (origin, typed(key, text.strip(), origin))
    return values


def keywords(values: Values, task: Task) -> dict[str, Any]:
    """The SDK's hyperparameter keywords (early stopping's parts as one mapping). A metric without a patience
    gets the task's config default: the door reads an unset patience as 0 and refuses it."""
    out = {k: v for k, (_, v) in values.items() if not k.startswith("early_stopping.")}
    parts = {k.partition(".")[2]: v for k, (_, v) in values.items() if k.startswith("early_stopping.")}
    defaults = {f.name: f.default for f in dataclasses.fields(config_of(task))}
    if "metric" in parts and "patience" not in parts and "early_stopping_patience" in defaults:
        parts["patience"] = defaults["early_stopping_patience"]
    if parts:
        out["early_stopping"] = parts
    return out


def option_values(keyword: str, options: dict[str, str]) -> dict[str, Any]:
    """--option KEY=VALUE pairs as typed fields of the request's ``keyword`` options message (text, collab,
    tabular), converted by the SDK's own rules; an unknown key gets suggestions."""
    request = training_pb2.CreateFineTuneJobRequest()
    names = tuple(getattr(request, keyword).DESCRIPTOR.fields_by_name)
    for key in options:
        if key not in names:
            raise UsageError(unknown(f"--option of {keyword} jobs", key, names))
    try:
        set_options(request, **{keyword: options})
    except (TypeError, ValueError) as e:
        raise UsageError(f"--option: {e}") from None
    return {f.name: list(v) if f.is_repeated else v for f, v in getattr(request, keyword).ListFields()}


# -- the task's view of them -------------------------------------------------------------------------------


def check_applies(task: Task, values: Values) -> None:
    """Each key among those the task's jobs take: the door refuses the others rather than ignoring them."""
    takes = taken(task)
    for key, (origin, _) in values.items():
        if key.partition(".")[0] not in takes:
            raise UsageError(f"{origin} does not apply to {task.name} jobs (they take: {', '.join(takes)})")


def _config_values(values: Values) -> dict[str, Any]:
    """The config fields the door builds from these hyperparameters (service/job_requests/common.py recipe)."""
    out: dict[str, Any] = {}
    for key, (_, value) in values.items():
        if key.startswith("early_stopping."):
            out[EARLY_STOPPING[key.partition(".")[2]]] = value
        elif key == "stages":
            out["stages"] = tuple(Stage(**s) for s in value)
        elif key == "group_lrs":
            out["group_lrs"] = tuple(value)
        else:
            out[key] = value
    if "early_stopping_metric" not in out:  # the door reads patience and min_delta only with a metric
        out = {k: v for k, v in out.items() if not k.startswith("early_stopping_")}
    if out.get("auto_lr") and "lr" in out:
        del out["auto_lr"]
    return out


def _base_weights(base: str | None, task: Task) -> BaseWeights | None:
    """The config's BaseWeights for --base (the door resolves files and stored models; here only the kind)."""
    if not task.bases:
        return None
    source = parse_base(base).WhichOneof("source") if base is not None else "torchvision"
    if source not in task.bases:
        takes = {"torchvision": "imagenet, torchvision[:WEIGHTS]", "weights_file": "file:PATH",
                 "stored_model": "model:NAME[/VERSION]", "random_init": "none"}
        raise UsageError(f"--base {base} does not apply to {task.name} jobs (they take: "
                         f"{', '.join(takes[s] for s in task.bases)})")
    kind = {"torchvision": "torchvision", "weights_file": "file", "stored_model": "store", "random_init": "none"}
    return BaseWeights(kind[source], path=(base or "") if source in ("weights_file", "stored_model") else "")


def check_config(task: Task, arch: str | None, base: str | None, values: Values,
                 options: dict[str, Any]) -> None:
    """Build the family's config as the door would (its own checks run: bounds, moms_min <= moms_max, one rate
    per layer group, pixels per batch, total epochs...); its refusal becomes a usage error."""
    if task.family == TEXT and base is None:
        raise UsageError(f"{task.name} jobs need --base: none (random weights) or model:LANGUAGE_MODEL_NAME")
    fields = _config_values(values)
    config = config_of(task)
    if task.family == TEXT:
        fields |= options
    elif task.name == TABULAR_MODEL:
        if not options.get("target"):
            raise UsageError("tabular jobs need --option target=COLUMN (the column to predict)")
        fields["target"] = options["target"]
    if task.family in (VISION, TEXT):
        fields |= {"task": task.name, "base": _base_weights(base, task)}
    if arch is not None and "arch" in {f.name for f in dataclasses.fields(config)}:
        fields["arch"] = arch
    try:
        config(**fields)
    except InvalidArgument as e:
        raise UsageError(e.message) from None


def warnings(task: Task, base: str | None, values: Values, *, find_lr: bool = False) -> list[str]:
    """What the request makes meaningless: values the job would accept and then not use (``find_lr``: an LR
    range test, which runs no 1cycle schedule and stores no model)."""
    out = []
    given = {k: origin for k, (origin, _) in values.items()}
    if find_lr:
        out += [f"{origin} is ignored by lr-find: the range test grows every group's rate from --start-lr to --end-lr "
                "over --num-batches batches and stores no model" for k, origin in given.items() if k in LR_FIND_UNUSED]
    if base is not None and not task.bases:
        out.append(f"--base is ignored: {task.name} models train from scratch")
    elif base is not None and parse_base(base).WhichOneof("source") == "random_init" and "freeze_epochs" in given:
        out.append(f"{given['freeze_epochs']} is ignored with --base none: a random body trains unfrozen from the "
                   "start")
    if "stages" in given:
        out += [f"{given[k]} is ignored: --set stages replaces freeze_epochs/epochs" for k in ("freeze_epochs",
                                                                                             "epochs") if k in given]
    if "auto_lr" in given and "lr" in given:
        out.append(f"{given['auto_lr']} is ignored: {given['lr']} sets the learning rate")
    if task.family == VISION and task.name != MULTI_LABEL:
        out += [f"{given[k]} is ignored: it applies to {MULTI_LABEL} only" for k in ("threshold", "fbeta_beta")
                if k in given]
    if "early_stopping.metric" not in given:
        out += [f"{given[k]} is ignored: early stopping is off without early_stopping.metric"
                for k in ("early_stopping.patience", "early_stopping.min_delta") if k in given]
    return out
