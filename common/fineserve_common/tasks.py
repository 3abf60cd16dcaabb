"""The task table: every task fineserve trains and serves, once. The front door checks requests against it,
the control plane names stored models by it, the engine picks a task family by it and the SDK picks its
defaults by it. Enum and layout values are the proto's names (fineserve.v1 Task, DatasetLayout), so this module
needs no generated code."""

from __future__ import annotations

from dataclasses import dataclass

VISION, TEXT, TABULAR = "vision", "text", "tabular"
"""Task families: the engine keeps each in a folder of its own (worker/engine/<family>/)."""

IMAGE_CLASSIFICATION, MULTI_LABEL, SEGMENTATION = "image_classification", "multi_label_classification", "segmentation"
LANGUAGE_MODEL, TEXT_CLASSIFICATION = "language_model", "text_classification"
COLLABORATIVE_FILTERING, TABULAR_MODEL = "collaborative_filtering", "tabular"
"""The tasks' names, as the engine, the model cards and the SDK spell them."""

RESNETS = ("resnet18", "resnet34", "resnet50")
RESNET_GROUPS = 3
"""Layer groups of every ResNet model (stem+layer1+layer2 / layer3+layer4 / head or decoder)."""

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PRECISION_ENUMS = {"PRECISION_AUTO": "auto", "FP32": "fp32", "BF16": "bf16", "FP16": "fp16"}
"""The proto's Precision names -> the engine's precision names."""

BASE_SOURCES = ("torchvision", "weights_file", "stored_model", "random_init")
"""The proto's BaseModel sources."""


@dataclass(frozen=True)
class Task:
    name: str
    """The engine's and the model card's name, e.g. "image_classification"."""
    enum: str
    """The proto's Task name, e.g. "IMAGE_CLASSIFICATION"."""
    family: str
    layout: str
    """The proto's DatasetLayout name of the data sets it learns from."""
    archs: tuple[str, ...]
    """Accepted architectures; the first is the default."""
    bases: tuple[str, ...]
    """Accepted base sources (BASE_SOURCES); () = trains from scratch, base left unset."""
    data_parallel: bool = False
    """Fine-tunes may run on several data-parallel workers."""
    find_lr: bool = False
    """FindLearningRate works for it."""
    label_noun: str = "classes"

    @property
    def default_arch(self) -> str:
        return self.archs[0]


TASKS: tuple[Task, ...] = (
    Task(IMAGE_CLASSIFICATION, "IMAGE_CLASSIFICATION", VISION, "IMAGE_FOLDERS", RESNETS, BASE_SOURCES,
         data_parallel=True, find_lr=True),
    Task(MULTI_LABEL, "MULTI_LABEL_CLASSIFICATION", VISION, "IMAGE_LABELS_CSV", RESNETS,
         BASE_SOURCES, find_lr=True, label_noun="labels"),
    Task(SEGMENTATION, "SEGMENTATION", VISION, "IMAGE_MASKS", RESNETS, BASE_SOURCES, data_parallel=True,
         find_lr=True),
    Task(LANGUAGE_MODEL, "LANGUAGE_MODEL", TEXT, "TEXT_CSV", ("awd_lstm",),
         ("weights_file", "stored_model", "random_init"), find_lr=True, label_noun="tokens"),
    Task(TEXT_CLASSIFICATION, "TEXT_CLASSIFICATION", TEXT, "TEXT_CSV", ("awd_lstm",),
         ("stored_model", "random_init"), find_lr=True),
    Task(COLLABORATIVE_FILTERING, "COLLABORATIVE_FILTERING", TABULAR, "RATINGS_CSV", ("dot", "neural"), ()),
    Task(TABULAR_MODEL, "TABULAR", TABULAR, "TABULAR_CSV", ("tabular_mlp",), ()),
)

_BY_NAME = {t.name: t for t in TASKS}
_BY_ENUM = {t.enum: t for t in TASKS}


def task(name: str) -> Task:
    """The task of an engine/card name; KeyError names the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(_BY_NAME)}") from None


def task_of_enum(enum_name: str) -> Task | None:
    """The task of a proto Task name, None for TASK_UNSPECIFIED or a name no release implements."""
    return _BY_ENUM.get(enum_name)


def family_tasks(family: str) -> tuple[Task, ...]:
    return tuple(t for t in TASKS if t.family == family)
