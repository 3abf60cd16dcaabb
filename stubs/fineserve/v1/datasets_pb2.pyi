import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from fineserve.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_LAYOUT_UNSPECIFIED: _ClassVar[DatasetLayout]
    IMAGE_FOLDERS: _ClassVar[DatasetLayout]
    IMAGE_LABELS_CSV: _ClassVar[DatasetLayout]
    IMAGE_MASKS: _ClassVar[DatasetLayout]
    TEXT_CSV: _ClassVar[DatasetLayout]
    RATINGS_CSV: _ClassVar[DatasetLayout]
    TABULAR_CSV: _ClassVar[DatasetLayout]

class ArchiveFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVE_FORMAT_UNSPECIFIED: _ClassVar[ArchiveFormat]
    ZIP: _ClassVar[ArchiveFormat]
    TAR: _ClassVar[ArchiveFormat]
    CSV: _ClassVar[ArchiveFormat]
DATASET_LAYOUT_UNSPECIFIED: DatasetLayout
IMAGE_FOLDERS: DatasetLayout
IMAGE_LABELS_CSV: DatasetLayout
IMAGE_MASKS: DatasetLayout
TEXT_CSV: DatasetLayout
RATINGS_CSV: DatasetLayout
TABULAR_CSV: DatasetLayout
ARCHIVE_FORMAT_UNSPECIFIED: ArchiveFormat
ZIP: ArchiveFormat
TAR: ArchiveFormat
CSV: ArchiveFormat

class UploadHeader(_message.Message):
    __slots__ = ("name", "layout", "format", "sha256", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    layout: DatasetLayout
    format: ArchiveFormat
    sha256: str
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., layout: _Optional[_Union[DatasetLayout, str]] = ..., format: _Optional[_Union[ArchiveFormat, str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class UploadDatasetRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class RegisterDatasetRequest(_message.Message):
    __slots__ = ("name", "layout", "uri")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    name: str
    layout: DatasetLayout
    uri: str
    def __init__(self, name: _Optional[str] = ..., layout: _Optional[_Union[DatasetLayout, str]] = ..., uri: _Optional[str] = ...) -> None: ...

class DatasetSummary(_message.Message):
    __slots__ = ("classes", "train_items", "valid_items")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    VALID_ITEMS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    train_items: int
    valid_items: int
    def __init__(self, classes: _Optional[_Iterable[str]] = ..., train_items: _Optional[int] = ..., valid_items: _Optional[int] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("id", "name", "layout", "source", "uri", "sha256", "size_bytes", "file_count", "summary", "created_at", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    layout: DatasetLayout
    source: str
    uri: str
    sha256: str
    size_bytes: int
    file_count: int
    summary: DatasetSummary
    created_at: _timestamp_pb2.Timestamp
    tenant: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., layout: _Optional[_Union[DatasetLayout, str]] = ..., source: _Optional[str] = ..., uri: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., file_count: _Optional[int] = ..., summary: _Optional[_Union[DatasetSummary, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page", "layout")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    layout: DatasetLayout
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., layout: _Optional[_Union[DatasetLayout, str]] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
