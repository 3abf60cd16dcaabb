"""fineserve's transfer-learning engine: a plain PyTorch library (no grpc, ray or service imports)."""

from .collab_training import train_collab
from .config import BaseWeights, FineTuneConfig, Stage
from .embedding_config import CollabConfig, TabularConfig
from .embedding_tasks import LOADERS as EMBEDDING_LOADERS
from .embedding_tasks import train_embedding_task
from .errors import Cancelled, DatasetError, EngineError, InvalidImage, WeightsUnavailable
from .inference import ImageClassifier
from .lr_finder import find_lr, lr_range_test
from .ratings_data import RatingsFormat
from .recommender import Recommender, UnknownId
from .tabular_data import InvalidRow
from .tabular_predictor import TabularPredictor
from .tabular_training import train_tabular
from .training import fine_tune

__all__ = [
    "EMBEDDING_LOADERS",
    "BaseWeights",
    "Cancelled",
    "CollabConfig",
    "DatasetError",
    "EngineError",
    "FineTuneConfig",
    "ImageClassifier",
    "InvalidImage",
    "InvalidRow",
    "RatingsFormat",
    "Recommender",
    "Stage",
    "TabularConfig",
    "TabularPredictor",
    "UnknownId",
    "WeightsUnavailable",
    "find_lr",
    "fine_tune",
    "lr_range_test",
    "train_collab",
    "train_embedding_task",
    "train_tabular",
]
