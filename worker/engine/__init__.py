"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from .config import BaseWeights, FineTuneConfig
from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .inference import ImageClassifier
from .training import fine_tune

__all__ = [
    "BaseWeights",
    "Cancelled",
    "DatasetError",
    "EngineError",
    "FineTuneConfig",
    "ImageClassifier",
    "InvalidImage",
    "WeightsUnavailable",
    "fine_tune",
]
