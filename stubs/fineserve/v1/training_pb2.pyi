import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from fineserve.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    IMAGE_CLASSIFICATION: _ClassVar[Task]
    MULTI_LABEL_CLASSIFICATION: _ClassVar[Task]
    SEGMENTATION: _ClassVar[Task]
    LANGUAGE_MODEL: _ClassVar[Task]
    TEXT_CLASSIFICATION: _ClassVar[Task]
    COLLABORATIVE_FILTERING: _ClassVar[Task]
    TABULAR: _ClassVar[Task]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_AUTO: _ClassVar[Precision]
    FP32: _ClassVar[Precision]
    BF16: _ClassVar[Precision]
    FP16: _ClassVar[Precision]
TASK_UNSPECIFIED: Task
IMAGE_CLASSIFICATION: Task
MULTI_LABEL_CLASSIFICATION: Task
SEGMENTATION: Task
LANGUAGE_MODEL: Task
TEXT_CLASSIFICATION: Task
COLLABORATIVE_FILTERING: Task
TABULAR: Task
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState
PRECISION_AUTO: Precision
FP32: Precision
BF16: Precision
FP16: Precision

class TorchvisionWeights(_message.Message):
    __slots__ = ("weights",)
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    weights: str
    def __init__(self, weights: _Optional[str] = ...) -> None: ...

class BaseModel(_message.Message):
    __slots__ = ("torchvision", "weights_file", "stored_model", "random_init")
    TORCHVISION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FILE_FIELD_NUMBER: _ClassVar[int]
    STORED_MODEL_FIELD_NUMBER: _ClassVar[int]
    RANDOM_INIT_FIELD_NUMBER: _ClassVar[int]
    torchvision: TorchvisionWeights
    weights_file: str
    stored_model: _common_pb2.ModelRef
    random_init: bool
    def __init__(self, torchvision: _Optional[_Union[TorchvisionWeights, _Mapping]] = ..., weights_file: _Optional[str] = ..., stored_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., random_init: _Optional[bool] = ...) -> None: ...

class Hyperparameters(_message.Message):
    __slots__ = ("freeze_epochs", "epochs", "lr", "lr_mult", "weight_decay", "pct_start", "batch_size", "image_size", "precision", "valid_pct", "seed", "flip", "div_factor", "final_div_factor", "moms_max", "moms_min", "group_lrs", "stages", "label_smoothing", "mixup_alpha", "grad_clip", "early_stopping", "auto_lr", "threshold", "fbeta_beta", "void_code", "keep")
    FREEZE_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    LR_MULT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    PCT_START_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    VALID_PCT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FLIP_FIELD_NUMBER: _ClassVar[int]
    DIV_FACTOR_FIELD_NUMBER: _ClassVar[int]
    FINAL_DIV_FACTOR_FIELD_NUMBER: _ClassVar[int]
    MOMS_MAX_FIELD_NUMBER: _ClassVar[int]
    MOMS_MIN_FIELD_NUMBER: _ClassVar[int]
    GROUP_LRS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    LABEL_SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    MIXUP_ALPHA_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    AUTO_LR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FBETA_BETA_FIELD_NUMBER: _ClassVar[int]
    VOID_CODE_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    freeze_epochs: int
    epochs: int
    lr: float
    lr_mult: float
    weight_decay: float
    pct_start: float
    batch_size: int
    image_size: int
    precision: Precision
    valid_pct: float
    seed: int
    flip: bool
    div_factor: float
    final_div_factor: float
    moms_max: float
    moms_min: float
    group_lrs: _containers.RepeatedScalarFieldContainer[float]
    stages: _containers.RepeatedCompositeFieldContainer[TrainingStage]
    label_smoothing: float
    mixup_alpha: float
    grad_clip: float
    early_stopping: EarlyStopping
    auto_lr: bool
    threshold: float
    fbeta_beta: float
    void_code: str
    keep: str
    def __init__(self, freeze_epochs: _Optional[int] = ..., epochs: _Optional[int] = ..., lr: _Optional[float] = ..., lr_mult: _Optional[float] = ..., weight_decay: _Optional[float] = ..., pct_start: _Optional[float] = ..., batch_size: _Optional[int] = ..., image_size: _Optional[int] = ..., precision: _Optional[_Union[Precision, str]] = ..., valid_pct: _Optional[float] = ..., seed: _Optional[int] = ..., flip: _Optional[bool] = ..., div_factor: _Optional[float] = ..., final_div_factor: _Optional[float] = ..., moms_max: _Optional[float] = ..., moms_min: _Optional[float] = ..., group_lrs: _Optional[_Iterable[float]] = ..., stages: _Optional[_Iterable[_Union[TrainingStage, _Mapping]]] = ..., label_smoothing: _Optional[float] = ..., mixup_alpha: _Optional[float] = ..., grad_clip: _Optional[float] = ..., early_stopping: _Optional[_Union[EarlyStopping, _Mapping]] = ..., auto_lr: _Optional[bool] = ..., threshold: _Optional[float] = ..., fbeta_beta: _Optional[float] = ..., void_code: _Optional[str] = ..., keep: _Optional[str] = ...) -> None: ...

class TextOptions(_message.Message):
    __slots__ = ("emb_size", "hidden_size", "n_layers", "max_vocab", "min_freq", "bptt", "max_len", "drop_mult", "group_lr_ratio")
    EMB_SIZE_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MAX_VOCAB_FIELD_NUMBER: _ClassVar[int]
    MIN_FREQ_FIELD_NUMBER: _ClassVar[int]
    BPTT_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    DROP_MULT_FIELD_NUMBER: _ClassVar[int]
    GROUP_LR_RATIO_FIELD_NUMBER: _ClassVar[int]
    emb_size: int
    hidden_size: int
    n_layers: int
    max_vocab: int
    min_freq: int
    bptt: int
    max_len: int
    drop_mult: float
    group_lr_ratio: float
    def __init__(self, emb_size: _Optional[int] = ..., hidden_size: _Optional[int] = ..., n_layers: _Optional[int] = ..., max_vocab: _Optional[int] = ..., min_freq: _Optional[int] = ..., bptt: _Optional[int] = ..., max_len: _Optional[int] = ..., drop_mult: _Optional[float] = ..., group_lr_ratio: _Optional[float] = ...) -> None: ...

class TrainingStage(_message.Message):
    __slots__ = ("epochs", "freeze_to", "image_size", "lr")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_TO_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    freeze_to: int
    image_size: int
    lr: float
    def __init__(self, epochs: _Optional[int] = ..., freeze_to: _Optional[int] = ..., image_size: _Optional[int] = ..., lr: _Optional[float] = ...) -> None: ...

class EarlyStopping(_message.Message):
    __slots__ = ("metric", "patience", "min_delta")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    metric: str
    patience: int
    min_delta: float
    def __init__(self, metric: _Optional[str] = ..., patience: _Optional[int] = ..., min_delta: _Optional[float] = ...) -> None: ...

class CreateFineTuneJobRequest(_message.Message):
    __slots__ = ("task", "model_name", "arch", "base", "dataset_id", "hyperparameters", "resources", "request_id", "collab", "tabular", "text")
    TASK_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COLLAB_FIELD_NUMBER: _ClassVar[int]
    TABULAR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    task: Task
    model_name: str
    arch: str
    base: BaseModel
    dataset_id: str
    hyperparameters: Hyperparameters
    resources: _common_pb2.Resources
    request_id: str
    collab: CollabOptions
    tabular: TabularOptions
    text: TextOptions
    def __init__(self, task: _Optional[_Union[Task, str]] = ..., model_name: _Optional[str] = ..., arch: _Optional[str] = ..., base: _Optional[_Union[BaseModel, _Mapping]] = ..., dataset_id: _Optional[str] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., request_id: _Optional[str] = ..., collab: _Optional[_Union[CollabOptions, _Mapping]] = ..., tabular: _Optional[_Union[TabularOptions, _Mapping]] = ..., text: _Optional[_Union[TextOptions, _Mapping]] = ...) -> None: ...

class CollabOptions(_message.Message):
    __slots__ = ("ratings_file", "separator", "user_column", "item_column", "rating_column", "timestamp_column", "items_file", "items_separator", "item_id_column", "title_column", "n_factors", "y_range", "split", "layers")
    RATINGS_FILE_FIELD_NUMBER: _ClassVar[int]
    SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    USER_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ITEM_COLUMN_FIELD_NUMBER: _ClassVar[int]
    RATING_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FILE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TITLE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    N_FACTORS_FIELD_NUMBER: _ClassVar[int]
    Y_RANGE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ratings_file: str
    separator: str
    user_column: str
    item_column: str
    rating_column: str
    timestamp_column: str
    items_file: str
    items_separator: str
    item_id_column: str
    title_column: str
    n_factors: int
    y_range: _containers.RepeatedScalarFieldContainer[float]
    split: str
    layers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ratings_file: _Optional[str] = ..., separator: _Optional[str] = ..., user_column: _Optional[str] = ..., item_column: _Optional[str] = ..., rating_column: _Optional[str] = ..., timestamp_column: _Optional[str] = ..., items_file: _Optional[str] = ..., items_separator: _Optional[str] = ..., item_id_column: _Optional[str] = ..., title_column: _Optional[str] = ..., n_factors: _Optional[int] = ..., y_range: _Optional[_Iterable[float]] = ..., split: _Optional[str] = ..., layers: _Optional[_Iterable[int]] = ...) -> None: ...

class TabularOptions(_message.Message):
    __slots__ = ("target", "categorical", "continuous", "regression", "data_file", "separator", "layers", "dropout")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_FIELD_NUMBER: _ClassVar[int]
    DATA_FILE_FIELD_NUMBER: _ClassVar[int]
    SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    target: str
    categorical: _containers.RepeatedScalarFieldContainer[str]
    continuous: _containers.RepeatedScalarFieldContainer[str]
    regression: bool
    data_file: str
    separator: str
    layers: _containers.RepeatedScalarFieldContainer[int]
    dropout: float
    def __init__(self, target: _Optional[str] = ..., categorical: _Optional[_Iterable[str]] = ..., continuous: _Optional[_Iterable[str]] = ..., regression: _Optional[bool] = ..., data_file: _Optional[str] = ..., separator: _Optional[str] = ..., layers: _Optional[_Iterable[int]] = ..., dropout: _Optional[float] = ...) -> None: ...

class FindLearningRateRequest(_message.Message):
    __slots__ = ("task", "arch", "base", "dataset_id", "hyperparameters", "start_lr", "end_lr", "num_batches", "freeze_to", "resources", "request_id", "text")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    START_LR_FIELD_NUMBER: _ClassVar[int]
    END_LR_FIELD_NUMBER: _ClassVar[int]
    NUM_BATCHES_FIELD_NUMBER: _ClassVar[int]
    FREEZE_TO_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    task: Task
    arch: str
    base: BaseModel
    dataset_id: str
    hyperparameters: Hyperparameters
    start_lr: float
    end_lr: float
    num_batches: int
    freeze_to: int
    resources: _common_pb2.Resources
    request_id: str
    text: TextOptions
    def __init__(self, task: _Optional[_Union[Task, str]] = ..., arch: _Optional[str] = ..., base: _Optional[_Union[BaseModel, _Mapping]] = ..., dataset_id: _Optional[str] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., start_lr: _Optional[float] = ..., end_lr: _Optional[float] = ..., num_batches: _Optional[int] = ..., freeze_to: _Optional[int] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., request_id: _Optional[str] = ..., text: _Optional[_Union[TextOptions, _Mapping]] = ...) -> None: ...

class LrPoint(_message.Message):
    __slots__ = ("lr", "loss")
    LR_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    lr: float
    loss: float
    def __init__(self, lr: _Optional[float] = ..., loss: _Optional[float] = ...) -> None: ...

class LrFinderResult(_message.Message):
    __slots__ = ("points", "suggestions", "diverged")
    class SuggestionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    DIVERGED_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[LrPoint]
    suggestions: _containers.ScalarMap[str, float]
    diverged: bool
    def __init__(self, points: _Optional[_Iterable[_Union[LrPoint, _Mapping]]] = ..., suggestions: _Optional[_Mapping[str, float]] = ..., diverged: _Optional[bool] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("model", "metrics", "lr_finder", "chosen_lr", "epochs_trained", "interpretation")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LR_FINDER_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_LR_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_TRAINED_FIELD_NUMBER: _ClassVar[int]
    INTERPRETATION_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    metrics: _containers.ScalarMap[str, float]
    lr_finder: LrFinderResult
    chosen_lr: float
    epochs_trained: int
    interpretation: Interpretation
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., lr_finder: _Optional[_Union[LrFinderResult, _Mapping]] = ..., chosen_lr: _Optional[float] = ..., epochs_trained: _Optional[int] = ..., interpretation: _Optional[_Union[Interpretation, _Mapping]] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("name", "precision", "recall", "f_score", "support", "iou", "threshold")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F_SCORE_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    name: str
    precision: float
    recall: float
    f_score: float
    support: int
    iou: float
    threshold: float
    def __init__(self, name: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f_score: _Optional[float] = ..., support: _Optional[int] = ..., iou: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class ConfusedPair(_message.Message):
    __slots__ = ("actual", "predicted", "count")
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    actual: str
    predicted: str
    count: int
    def __init__(self, actual: _Optional[str] = ..., predicted: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class TopLoss(_message.Message):
    __slots__ = ("item", "actual", "predicted", "loss", "probability")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    item: str
    actual: str
    predicted: str
    loss: float
    probability: float
    def __init__(self, item: _Optional[str] = ..., actual: _Optional[str] = ..., predicted: _Optional[str] = ..., loss: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class Interpretation(_message.Message):
    __slots__ = ("task", "classes", "confusion", "per_class", "most_confused", "top_losses", "beta", "items", "precision")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    MOST_CONFUSED_FIELD_NUMBER: _ClassVar[int]
    TOP_LOSSES_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    task: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    confusion: _containers.RepeatedScalarFieldContainer[int]
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    most_confused: _containers.RepeatedCompositeFieldContainer[ConfusedPair]
    top_losses: _containers.RepeatedCompositeFieldContainer[TopLoss]
    beta: float
    items: int
    precision: str
    def __init__(self, task: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., confusion: _Optional[_Iterable[int]] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., most_confused: _Optional[_Iterable[_Union[ConfusedPair, _Mapping]]] = ..., top_losses: _Optional[_Iterable[_Union[TopLoss, _Mapping]]] = ..., beta: _Optional[float] = ..., items: _Optional[int] = ..., precision: _Optional[str] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("epoch", "epochs", "batch", "batches", "phase")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    epochs: int
    batch: int
    batches: int
    phase: str
    def __init__(self, epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., batch: _Optional[int] = ..., batches: _Optional[int] = ..., phase: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "task", "kind", "request", "created_at", "started_at", "finished_at", "error", "result", "progress", "attempts", "lr_request", "tenant", "queue_position")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LR_REQUEST_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    task: Task
    kind: str
    request: CreateFineTuneJobRequest
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error: str
    result: JobResult
    progress: JobProgress
    attempts: int
    lr_request: FindLearningRateRequest
    tenant: str
    queue_position: int
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., task: _Optional[_Union[Task, str]] = ..., kind: _Optional[str] = ..., request: _Optional[_Union[CreateFineTuneJobRequest, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., progress: _Optional[_Union[JobProgress, _Mapping]] = ..., attempts: _Optional[int] = ..., lr_request: _Optional[_Union[FindLearningRateRequest, _Mapping]] = ..., tenant: _Optional[str] = ..., queue_position: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page", "states", "model_name")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    states: _containers.RepeatedScalarFieldContainer[JobState]
    model_name: str
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ..., model_name: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id", "from_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    from_sequence: int
    def __init__(self, id: _Optional[str] = ..., from_sequence: _Optional[int] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("state", "reason")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    reason: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class BatchProgress(_message.Message):
    __slots__ = ("phase", "epoch", "epochs", "batch", "batches", "loss", "lr", "momentum", "group_lrs")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    GROUP_LRS_FIELD_NUMBER: _ClassVar[int]
    phase: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    lr: float
    momentum: float
    group_lrs: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, phase: _Optional[str] = ..., epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., batch: _Optional[int] = ..., batches: _Optional[int] = ..., loss: _Optional[float] = ..., lr: _Optional[float] = ..., momentum: _Optional[float] = ..., group_lrs: _Optional[_Iterable[float]] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("phase", "epoch", "epochs", "metrics", "seconds")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    phase: str
    epoch: int
    epochs: int
    metrics: _containers.ScalarMap[str, float]
    seconds: float
    def __init__(self, phase: _Optional[str] = ..., epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., seconds: _Optional[float] = ...) -> None: ...

class CheckpointSaved(_message.Message):
    __slots__ = ("epoch", "path")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    path: str
    def __init__(self, epoch: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class LogMessage(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "sequence", "time", "state", "batch", "epoch", "checkpoint", "log")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    state: StateChange
    batch: BatchProgress
    epoch: EpochMetrics
    checkpoint: CheckpointSaved
    log: LogMessage
    def __init__(self, job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[StateChange, _Mapping]] = ..., batch: _Optional[_Union[BatchProgress, _Mapping]] = ..., epoch: _Optional[_Union[EpochMetrics, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointSaved, _Mapping]] = ..., log: _Optional[_Union[LogMessage, _Mapping]] = ...) -> None: ...
