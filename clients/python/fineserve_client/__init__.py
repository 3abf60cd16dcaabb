"""Python SDK and CLI for fineserve, the gRPC fine-tuning and serving service.

    from fineserve_client import Client

    with Client("localhost:50051") as fs:
        ds = fs.upload_dataset("pets/", layout="image_folders")
        job = fs.fine_tune(ds.id, "pets", arch="resnet34", epochs=3)
        print(fs.classify("pets", ["cat.jpg", "dog.jpg"]))
        fs.segment("roads", ["street.png"], save_to="out/")  # masks + colour overlays

Depends only on grpcio, protobuf, the generated stubs (fineserve-stubs) and the pure-Python task table
(fineserve-common).
"""

from fineserve.v1.common_pb2 import Image, ModelRef, Resources
from fineserve.v1.datasets_pb2 import Dataset
from fineserve.v1.models_pb2 import Model
from fineserve.v1.training_pb2 import BaseModel, Hyperparameters, Job, JobEvent, JobState

from . import errors, jobs
from .client import Classification, Client, parse_base, parse_model_ref, tls_credentials
from .embeddings import Recommendations, ScoredItem, TabularPrediction
from .errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FineserveError,
    Internal,
    InvalidArgument,
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
from .results import LabelProbability
from .segmentation import Segmentation

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "BaseModel",
    "Cancelled",
    "Classification",
    "Client",
    "Dataset",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FineserveError",
    "Heatmap",
    "Hyperparameters",
    "Image",
    "Internal",
    "InvalidArgument",
    "Job",
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
    "ScoredItem",
    "Segmentation",
    "TabularPrediction",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "__version__",
    "check_job",
    "errors",
    "is_terminal",
    "jobs",
    "overlay_path",
    "parse_base",
    "parse_model_ref",
    "succeeded",
    "tls_credentials",
]
