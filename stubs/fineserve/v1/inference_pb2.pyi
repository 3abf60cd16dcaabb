from fineserve.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("model", "images", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    top_k: int
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., top_k: _Optional[int] = ...) -> None: ...

class ClassScore(_message.Message):
    __slots__ = ("label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    probability: float
    def __init__(self, label: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("name", "top")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    name: str
    top: _containers.RepeatedCompositeFieldContainer[ClassScore]
    def __init__(self, name: _Optional[str] = ..., top: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[Classification]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[Classification, _Mapping]]] = ...) -> None: ...

class ScoreLabelsRequest(_message.Message):
    __slots__ = ("model", "images", "threshold")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    threshold: float
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., threshold: _Optional[float] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class LabelScores(_message.Message):
    __slots__ = ("name", "scores", "predicted")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    predicted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., predicted: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreLabelsResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[LabelScores]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[LabelScores, _Mapping]]] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ("model", "images", "include_probabilities")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    include_probabilities: bool
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., include_probabilities: _Optional[bool] = ...) -> None: ...

class ClassShare(_message.Message):
    __slots__ = ("label", "share")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    label: str
    share: float
    def __init__(self, label: _Optional[str] = ..., share: _Optional[float] = ...) -> None: ...

class ProbabilityMap(_message.Message):
    __slots__ = ("label", "png")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    label: str
    png: bytes
    def __init__(self, label: _Optional[str] = ..., png: _Optional[bytes] = ...) -> None: ...

class Segmentation(_message.Message):
    __slots__ = ("name", "mask_png", "width", "height", "shares", "probabilities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MASK_PNG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    mask_png: bytes
    width: int
    height: int
    shares: _containers.RepeatedCompositeFieldContainer[ClassShare]
    probabilities: _containers.RepeatedCompositeFieldContainer[ProbabilityMap]
    def __init__(self, name: _Optional[str] = ..., mask_png: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., shares: _Optional[_Iterable[_Union[ClassShare, _Mapping]]] = ..., probabilities: _Optional[_Iterable[_Union[ProbabilityMap, _Mapping]]] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("model", "results", "classes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[Segmentation]
    classes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[Segmentation, _Mapping]]] = ..., classes: _Optional[_Iterable[str]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("model", "user_id", "similar_to_item", "pairs", "top_by_bias", "users", "k", "popularity_fallback")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_TO_ITEM_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    TOP_BY_BIAS_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    POPULARITY_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    user_id: str
    similar_to_item: str
    pairs: UserItemPairs
    top_by_bias: bool
    users: UserIds
    k: int
    popularity_fallback: bool
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., user_id: _Optional[str] = ..., similar_to_item: _Optional[str] = ..., pairs: _Optional[_Union[UserItemPairs, _Mapping]] = ..., top_by_bias: _Optional[bool] = ..., users: _Optional[_Union[UserIds, _Mapping]] = ..., k: _Optional[int] = ..., popularity_fallback: _Optional[bool] = ...) -> None: ...

class UserIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UserRecommendations(_message.Message):
    __slots__ = ("user_id", "items", "fallback")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    fallback: bool
    def __init__(self, user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., fallback: _Optional[bool] = ...) -> None: ...

class UserItemPairs(_message.Message):
    __slots__ = ("pairs",)
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[UserItem]
    def __init__(self, pairs: _Optional[_Iterable[_Union[UserItem, _Mapping]]] = ...) -> None: ...

class UserItem(_message.Message):
    __slots__ = ("user_id", "item_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "title")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    title: str
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., title: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("model", "items", "ratings", "fallback", "users")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    ratings: _containers.RepeatedScalarFieldContainer[float]
    fallback: bool
    users: _containers.RepeatedCompositeFieldContainer[UserRecommendations]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., ratings: _Optional[_Iterable[float]] = ..., fallback: _Optional[bool] = ..., users: _Optional[_Iterable[_Union[UserRecommendations, _Mapping]]] = ...) -> None: ...

class TabularRow(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PredictTabularRequest(_message.Message):
    __slots__ = ("model", "rows", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    rows: _containers.RepeatedCompositeFieldContainer[TabularRow]
    top_k: int
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., rows: _Optional[_Iterable[_Union[TabularRow, _Mapping]]] = ..., top_k: _Optional[int] = ...) -> None: ...

class TabularPrediction(_message.Message):
    __slots__ = ("top", "value")
    TOP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    top: _containers.RepeatedCompositeFieldContainer[ClassScore]
    value: float
    def __init__(self, top: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., value: _Optional[float] = ...) -> None: ...

class PredictTabularResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[TabularPrediction]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TabularPrediction, _Mapping]]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("model", "images", "target")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    target: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., target: _Optional[str] = ...) -> None: ...

class Heatmap(_message.Message):
    __slots__ = ("name", "target", "grid_width", "grid_height", "grid", "overlay_png", "probability", "layer", "warning")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GRID_WIDTH_FIELD_NUMBER: _ClassVar[int]
    GRID_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    OVERLAY_PNG_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    name: str
    target: str
    grid_width: int
    grid_height: int
    grid: _containers.RepeatedScalarFieldContainer[float]
    overlay_png: bytes
    probability: float
    layer: str
    warning: str
    def __init__(self, name: _Optional[str] = ..., target: _Optional[str] = ..., grid_width: _Optional[int] = ..., grid_height: _Optional[int] = ..., grid: _Optional[_Iterable[float]] = ..., overlay_png: _Optional[bytes] = ..., probability: _Optional[float] = ..., layer: _Optional[str] = ..., warning: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[Heatmap]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[Heatmap, _Mapping]]] = ...) -> None: ...

class PredictTextRequest(_message.Message):
    __slots__ = ("model", "texts", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    texts: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class TextPrediction(_message.Message):
    __slots__ = ("top",)
    TOP_FIELD_NUMBER: _ClassVar[int]
    top: _containers.RepeatedCompositeFieldContainer[ClassScore]
    def __init__(self, top: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ...) -> None: ...

class PredictTextResponse(_message.Message):
    __slots__ = ("model", "results")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[TextPrediction]
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TextPrediction, _Mapping]]] = ...) -> None: ...
