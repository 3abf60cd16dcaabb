"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from .config import BaseWeights, FineTuneConfig, Stage
from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .inference import ImageClassifier
from .lr_finder import find_lr, lr_range_test
from .segmentation_inference import ImageSegmenter
from .served_models import load_served_model
from .training import fine_tune

__all__ = [
    "BaseWeights",
    "Cancelled",
    "DatasetError",
    "EngineError",
    "FineTuneConfig",
    "ImageClassifier",
    "ImageSegmenter",
    "InvalidImage",
    "Stage",
    "WeightsUnavailable",
    "find_lr",
    "fine_tune",
    "load_served_model",
    "lr_range_test",
]
