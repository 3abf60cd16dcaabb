"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from .config import BaseWeights, FineTuneConfig, Stage
from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .inference import ImageClassifier
from .lr_finder import find_lr, lr_range_test
from .training import fine_tune

__all__ = [
    "BaseWeights",
    "Cancelled",
    "DatasetError",
    "EngineError",
    "FineTuneConfig",
    "ImageClassifier",
    "InvalidImage",
    "Stage",
    "WeightsUnavailable",
    "find_lr",
    "fine_tune",
    "lr_range_test",
]
