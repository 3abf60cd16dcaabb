"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from .collab_training import train_collab
from .config import BaseWeights, FineTuneConfig, Stage
from .embedding_config import CollabConfig, TabularConfig
from .embedding_tasks import train_embedding_task
from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .explanations import Explanation, explain
from .grad_cam import Target, class_score, grad_cam
from .inference import ImageClassifier
from .lr_finder import find_lr, lr_range_test
from .multi_label_inference import LabelScores, MultiLabelClassifier
from .ratings_data import RatingsFormat
from .recommender import Recommender, UnknownId
from .segmentation_inference import ImageSegmenter
from .served_models import load_served_model, prepare_for_serving
from .tabular_data import InvalidRow
from .tabular_predictor import TabularPredictor
from .tabular_training import train_tabular
from .training import fine_tune

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
    "train_collab",
    "train_embedding_task",
    "train_tabular",
]
