"""The caller's arguments as request fields, shared by the areas and the CLI: enum names, model references,
where a fine-tune starts from, hyperparameters, job options, and the per-task defaults, which come from
``fineserve_common.tasks`` so that the SDK and the service agree on what each task accepts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from fineserve.v1 import common_pb2, training_pb2
from fineserve_common.tasks import IMAGE_CLASSIFICATION, TEXT, Task, task, task_of_enum

DEFAULT_TASK = IMAGE_CLASSIFICATION
DEFAULT_ARCH = task(DEFAULT_TASK).default_arch
"""The SDK's and the CLI's default: a ResNet image classifier ("resnet18")."""
DEFAULT_BASE = "imagenet"
"""Where an image task starts when no base is given: torchvision's DEFAULT weights."""


def enum_value(enum_type: Any, value: str | int, what: str, prefix: str = "") -> int:
    """An enum value from its name (case-insensitive, ``-`` as ``_``, optional ``prefix``) or number; a
    ``ValueError`` names the choices, so a typo in a notebook or on the command line explains itself."""
    names = [n for n in enum_type.keys() if not n.endswith("_UNSPECIFIED")]  # noqa: SIM118 (not a dict)
    if isinstance(value, int) and not isinstance(value, bool):
        if value in enum_type.values():
            return value
    elif isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        for candidate in (key, prefix + key):
            if candidate in names:
                return enum_type.Value(candidate)
    choices = ", ".join(n.lower() for n in names)
    raise ValueError(f"unknown {what} {value!r}; expected one of: {choices}")


def parse_model_ref(text: str, version: int = 0) -> tuple[str, int]:
    """Split ``"NAME"`` or ``"NAME/VERSION"`` into ``(name, version)``; ``version`` applies to a bare name."""
    name, sep, ver = text.strip().partition("/")
    if not name:
        raise ValueError(f"invalid model reference {text!r}: empty name")
    if not sep:
        return name, int(version)
    try:
        parsed = int(ver)
    except ValueError:
        raise ValueError(f"invalid model reference {text!r}: version must be an integer") from None
    if parsed < 0 or (version and parsed != version):
        raise ValueError(
            f"invalid model reference {text!r}" + (f" with version={version}" if version else "")
        )
    return name, parsed


def model_ref(model: str | common_pb2.ModelRef, version: int = 0) -> common_pb2.ModelRef:
    """A ``ModelRef`` from a message (as it is), a name (``version`` 0: the latest) or ``"name/version"``."""
    if isinstance(model, common_pb2.ModelRef):
        return model
    name, ver = parse_model_ref(model, version)
    return common_pb2.ModelRef(name=name, version=ver)


def parse_base(spec: str | training_pb2.BaseModel) -> training_pb2.BaseModel:
    """Parse where a fine-tune starts from into a ``BaseModel``.

    * ``"imagenet"`` or ``"torchvision"``: torchvision's DEFAULT weights for the architecture;
    * ``"torchvision:IMAGENET1K_V1"``: a member of torchvision's weight enum;
    * ``"file:/path/weights.safetensors"``: a weights file on the workers (under the server's allowed roots);
    * ``"model:NAME"`` or ``"model:NAME/VERSION"``: a model in the store (latest version without VERSION);
    * ``"none"`` or ``"random"``: random initialisation.

    Anything else raises ``ValueError``. A ``BaseModel`` message is returned as it is.
    """
    if isinstance(spec, training_pb2.BaseModel):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"base must be a string, not {type(spec).__name__}")
    kind, sep, rest = spec.strip().partition(":")
    kind, rest = kind.lower(), rest.strip()
    base = training_pb2.BaseModel()
    if not sep:
        if kind in ("imagenet", "torchvision"):
            base.torchvision.SetInParent()
            return base
        if kind in ("none", "random"):
            base.random_init = True
            return base
    elif kind == "torchvision" and rest:
        base.torchvision.weights = rest
        return base
    elif kind == "file" and rest:
        path = rest[2:] if rest.startswith("//") else rest  # file:///abs/path
        if path:
            base.weights_file = path
            return base
    elif kind == "model" and rest:
        name, version = parse_model_ref(rest)
        base.stored_model.name = name
        base.stored_model.version = version
        return base
    raise ValueError(
        f"unknown base {spec!r}; expected imagenet, torchvision[:WEIGHTS], file:PATH, "
        "model:NAME[/VERSION] or none"
    )


def base_spec(base: training_pb2.BaseModel) -> str:
    """The :func:`parse_base` text of a ``BaseModel`` (``""`` when unset), to show a job's start."""
    kind = base.WhichOneof("source")
    if kind == "torchvision":
        return f"torchvision:{base.torchvision.weights or 'DEFAULT'}"
    if kind == "weights_file":
        return f"file:{base.weights_file}"
    if kind == "stored_model":
        ref = base.stored_model
        return f"model:{ref.name}" + (f"/{ref.version}" if ref.version else "")
    return "none" if kind == "random_init" else ""


# -- per-task defaults ---------------------------------------------------------------------------------


def job_task(value: str | int) -> tuple[int, Task | None]:
    """The proto ``Task`` value of a name or number, and its row of the task table (``None``: unspecified)."""
    number = enum_value(training_pb2.Task, value, "task")
    return number, task_of_enum(training_pb2.Task.Name(number))


def job_arch(job: Task | None, arch: str) -> str:
    """The arch to send. The default is an image backbone: for a task without it (text, tables, ratings) it
    is left unset and the service picks the task's own default."""
    return "" if job is not None and arch == DEFAULT_ARCH and arch not in job.archs else arch


def job_base(job: Task | None, base: str | training_pb2.BaseModel | None) -> training_pb2.BaseModel | None:
    """parse_base(base); unset: ImageNet weights, except for text tasks, which have no default start (the
    service names the choices)."""
    if base is not None:
        return parse_base(base)
    return None if job is not None and job.family == TEXT else parse_base(DEFAULT_BASE)


def trains_from_scratch(job: Task | None) -> bool:
    """A task that takes no base at all (collaborative filtering, tabular): a fine-tune sends none."""
    return job is not None and not job.bases


# -- messages from keywords ------------------------------------------------------------------------------


def hyperparameters_message(**values: Any) -> training_pb2.Hyperparameters:
    """A Hyperparameters message from keywords: scalars, ``group_lrs`` (a list), ``stages`` (a list of
    ``TrainingStage`` messages or dicts of its fields) and ``early_stopping`` (a message or a dict). ``None``
    values are not set, so the server's defaults apply; an unknown name is a ``TypeError``."""
    fields = training_pb2.Hyperparameters.DESCRIPTOR.fields_by_name
    for key in values:
        if key not in fields:
            raise TypeError(f"unknown hyperparameter {key!r}; known: {', '.join(sorted(fields))}")
    hyper = training_pb2.Hyperparameters()
    for key, value in values.items():
        if value is None:
            continue
        if key == "precision":
            hyper.precision = enum_value(training_pb2.Precision, value, "precision", prefix="PRECISION_")
        elif key == "group_lrs":
            hyper.group_lrs.extend(value)
        elif key == "stages":
            hyper.stages.extend(s if isinstance(s, training_pb2.TrainingStage) else training_pb2.TrainingStage(**s)
                                for s in value)
        elif key == "early_stopping":
            hyper.early_stopping.CopyFrom(value if isinstance(value, training_pb2.EarlyStopping)
                                          else training_pb2.EarlyStopping(**value))
        else:
            setattr(hyper, key, value)
    return hyper


def set_options(request: Any, **options: Any) -> None:
    """Set each named message field of ``request`` (``resources``, ``collab``, ``tabular``, ``text``) from a
    message or a mapping of its fields, as :func:`_options_message` reads it; ``None`` leaves it unset."""
    for name, values in options.items():
        if values is not None:
            field = getattr(request, name)
            field.CopyFrom(_options_message(type(field), values))


def _options_message(message_type: type, values: Mapping[str, Any] | Any) -> Any:
    """A Resources / CollabOptions / TabularOptions / TextOptions message from a message or a mapping of its
    fields; text values (as the CLI's KEY=VALUE gives them) are converted by field type, lists from
    comma-separated text, and other values are left to protobuf's own type checks (a float for an integer
    field is refused, not truncated); an unknown field is a ``TypeError`` that names the known ones."""
    if isinstance(values, message_type):
        return values
    message = message_type()
    fields = message_type.DESCRIPTOR.fields_by_name
    for key, value in values.items():
        if key not in fields:
            raise TypeError(f"unknown {message_type.__name__} field {key!r}; known: {', '.join(sorted(fields))}")
        f = fields[key]
        repeated = f.is_repeated
        items = value.split(",") if repeated and isinstance(value, str) else value
        to_type = {FieldDescriptor.TYPE_INT32: int, FieldDescriptor.TYPE_DOUBLE: float,
                   FieldDescriptor.TYPE_BOOL: _bool}.get(f.type, str)

        def convert(v: Any, to_type: Callable[[Any], Any] = to_type) -> Any:
            return to_type(v) if isinstance(v, str) else v

        if repeated:
            getattr(message, key).extend(convert(v) for v in items if v != "")
        else:
            setattr(message, key, convert(items))
    return message


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    return bool(value)
