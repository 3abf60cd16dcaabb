"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from .config import BaseWeights, FineTuneConfig, Stage
from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .explanations import Explanation, explain
from .grad_cam import Target, class_score, grad_cam
from .inference import ImageClassifier
from .lr_finder import find_lr, lr_range_test
from .multi_label_inference import LabelScores, MultiLabelClassifier
from .segmentation_inference import ImageSegmenter
from .served_models import load_served_model
from .training import fine_tune

__all__ = [
    "BaseWeights",
    "Cancelled",
    "DatasetError",
    "EngineError",
    "Explanation",
    "FineTuneConfig",
    "ImageClassifier",
    "ImageSegmenter",
    "InvalidImage",
    "LabelScores",
    "MultiLabelClassifier",
    "Stage",
    "Target",
    "WeightsUnavailable",
    "class_score",
    "explain",
    "find_lr",
    "fine_tune",
    "grad_cam",
    "load_served_model",
    "lr_range_test",
]
