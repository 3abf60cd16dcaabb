"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from fineserve_common.configs import (
    BaseWeights,
    CollabConfig,
    FineTuneConfig,
    RatingsFormat,
    Stage,
    TabularConfig,
    TextConfig,
)

from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .families import load_served_model
from .images import set_pixel_limit
from .lr_finder import lr_range_test
from .runner import find_lr, fine_tune
from .served_models import prepare_for_serving
from .tabular.data import InvalidRow
from .tabular.predictor import TabularPredictor
from .tabular.recommender import Recommender, UnknownId
from .vision.classifier import ImageClassifier
from .vision.explanations import Explanation, explain
from .vision.grad_cam import Target, class_score, grad_cam
from .vision.multi_label_classifier import LabelScores, MultiLabelClassifier
from .vision.segmenter import ImageSegmenter

__all__ = [
    "BaseWeights",
    "Cancelled",
    "CollabConfig",
    "DatasetError",
    "EngineError",
    "Explanation",
    "FineTuneConfig",
    "ImageClassifier",
    "ImageSegmenter",
    "InvalidImage",
    "InvalidRow",
    "LabelScores",
    "MultiLabelClassifier",
    "RatingsFormat",
    "Recommender",
    "Stage",
    "TabularConfig",
    "TabularPredictor",
    "Target",
    "TextConfig",
    "UnknownId",
    "WeightsUnavailable",
    "class_score",
    "explain",
    "find_lr",
    "fine_tune",
    "grad_cam",
    "load_served_model",
    "lr_range_test",
    "prepare_for_serving",
    "set_pixel_limit",
]
