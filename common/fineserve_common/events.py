"""What a running job reports, typed: the engine emits these through its on_event callback, the worker streams
them over Ray, and the control plane stores each as a proto JobEvent (control/jobs.py). Epochs are numbered
from 1 over the whole job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Started:
    """The job's worker holds its resources and runs: the job is RUNNING. Names the process, so operators (and
    the chaos tests) can find it."""

    pid: int
    host: str


@dataclass(frozen=True)
class Log:
    """A line for the job's log: what the engine found (data, device, base weights) and what it decided."""

    message: str


@dataclass(frozen=True)
class Batch:
    """A training step finished (throttled by the worker; an epoch's last batch always goes through)."""

    phase: str
    """"stage-<i>" while training, "lr_find" during a range test."""
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    lr: float = 0.0
    """The head group's rate."""
    momentum: float = 0.0
    group_lrs: tuple[float, ...] = ()


@dataclass(frozen=True)
class Epoch:
    phase: str
    epoch: int
    epochs: int
    metrics: dict[str, float]
    """valid_loss, train_loss, accuracy and the task's own (mean_iou, fbeta, perplexity, rmse, ...)."""
    seconds: float = 0.0


@dataclass(frozen=True)
class Checkpoint:
    """The state after this epoch is on disk: a re-queued job resumes after it."""

    epoch: int
    path: str
    """The checkpoint directory inside the job's out_dir."""


@dataclass(frozen=True)
class Heartbeat:
    """Sent when the worker has said nothing else for a while: it renews the job's lease."""


@dataclass(frozen=True)
class LrFinderResult:
    """The LR range test's curve and the rates it suggests."""

    points: list[tuple[float, float]]
    """(lr, smoothed loss) per batch."""
    suggestions: dict[str, float]
    """"valley", "steepest", "minimum" (the loss minimum's lr / 10)."""
    diverged: bool = False


@dataclass(frozen=True)
class ClassMetrics:
    """One class's (or label's) validation numbers; the fields a task does not measure stay 0."""

    name: str
    precision: float
    recall: float
    f_score: float
    """F1, or F-beta for multi-label."""
    support: int
    """Validation images (pixels, for segmentation) of this true class or label."""
    iou: float = 0.0
    threshold: float = 0.0
    """Multi-label: the served threshold."""


@dataclass(frozen=True)
class TopLoss:
    item: str
    """The image's path relative to the data set's root."""
    actual: str
    predicted: str
    loss: float
    probability: float
    """The served probability of the actual class."""


@dataclass(frozen=True)
class Interpretation:
    """fast.ai's ClassificationInterpretation of a finished image job, measured on the validation set with the
    model as served: what a user needs to trust (or not) a model without writing code."""

    task: str
    classes: list[str]
    confusion: list[list[int]] = field(default_factory=list)
    """confusion[actual][predicted] counts (images, or non-void pixels); [] for multi-label or too many classes."""
    per_class: list[ClassMetrics] = field(default_factory=list)
    most_confused: list[tuple[str, str, int]] = field(default_factory=list)
    """(actual, predicted, count), largest first."""
    top_losses: list[TopLoss] = field(default_factory=list)
    """Highest loss first."""
    beta: float = 0.0
    items: int = 0
    precision: str = "fp32"


@dataclass(frozen=True)
class JobResult:
    """What a finished job hands back: a fine-tune's model card and metrics, a range test's curve."""

    metrics: dict[str, float] = field(default_factory=dict)
    """A fine-tune's: the stored model's validation metrics measured as served (the serving precision, a
    multi-label model's tuned thresholds) and the kept epoch's train_loss; the card's training_metrics are the
    kept epoch's as training measured them."""
    card: dict[str, Any] | None = None
    """The written model's card (fine-tunes)."""
    epochs_trained: int = 0
    lr_finder: LrFinderResult | None = None
    """FindLearningRate's result, or the range test auto_lr ran."""
    chosen_lr: float | None = None
    """auto_lr's choice."""
    interpretation: Interpretation | None = None
    """The stored model's validation interpretation (image fine-tunes)."""


@dataclass(frozen=True)
class Succeeded:
    """The job's last event when it finished; a fine-tune's model is in its out_dir, ready to publish."""

    result: JobResult


@dataclass(frozen=True)
class Failed:
    """The job's last event when it ended without a result; the job manager decides FAILED or CANCELLED."""

    reason: str
    """What the caller reads: the engine's message, or the error and the last lines of its traceback."""
    cancelled: bool = False
    """It stopped because it was asked to."""


Event = Started | Log | Batch | Epoch | Checkpoint | Heartbeat | Succeeded | Failed
