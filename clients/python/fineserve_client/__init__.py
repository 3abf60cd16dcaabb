"""Python SDK and CLI for fineserve, the gRPC fine-tuning and serving service.

    from fineserve_client import Client

    with Client() as fs:                     # $FINESERVE_TARGET, else localhost:50051
        ds = fs.upload_dataset("pets/", layout="image_folders")
        job = fs.fine_tune(ds.id, "pets", arch="resnet34", epochs=3)   # raises JobFailed if it fails
        print(fs.classify("pets", ["cat.jpg", "dog.jpg"]))
        fs.segment("roads", ["street.png"], save_to="out/")  # masks + colour overlays

``AsyncClient`` has the same methods as coroutines (``grpc.aio``). Depends only on grpcio, protobuf, the
generated stubs (fineserve-stubs) and the pure-Python task table (fineserve-common).
"""

from fineserve.v1.common_pb2 import Image, ModelRef, Resources
from fineserve.v1.training_pb2 import BaseModel, Hyperparameters, JobEvent

from . import _grpc_log, errors, jobs  # noqa: F401 (_grpc_log: before grpc loads)
from .aio import AsyncClient
from .client import Classification, Client, parse_base, parse_model_ref, tls_credentials
from .connection import Settings
from .embeddings import Recommendations, ScoredItem, TabularPrediction
from .errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FineserveError,
    Internal,
    InvalidArgument,
    JobCancelled,
    JobFailed,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from .interpretation import Heatmap, LabelScores, overlay_path
from .jobs import check_job, is_terminal, succeeded
from .progress import ProgressBar
from .records import Dataset, DatasetLayout, Job, JobState, Model, Task
from .report import interpretation_of, plot_confusion_matrix, plot_top_losses
from .results import LabelProbability
from .retries import RetryPolicy
from .segmentation import Segmentation

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "BaseModel",
    "Cancelled",
    "Classification",
    "Client",
    "Dataset",
    "DatasetLayout",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FineserveError",
    "Heatmap",
    "Hyperparameters",
    "Image",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobEvent",
    "JobFailed",
    "JobState",
    "LabelProbability",
    "LabelScores",
    "Model",
    "ModelRef",
    "NotFound",
    "PermissionDenied",
    "ProgressBar",
    "Recommendations",
    "ResourceExhausted",
    "Resources",
    "RetryPolicy",
    "ScoredItem",
    "Segmentation",
    "Settings",
    "TabularPrediction",
    "Task",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "__version__",
    "check_job",
    "errors",
    "interpretation_of",
    "is_terminal",
    "jobs",
    "overlay_path",
    "parse_base",
    "parse_model_ref",
    "plot_confusion_matrix",
    "plot_top_losses",
    "succeeded",
    "tls_credentials",
]
