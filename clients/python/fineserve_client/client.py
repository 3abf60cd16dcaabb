"""The fineserve SDK: :class:`Client` wraps the ``fineserve.v1`` gRPC services in plain Python calls."""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from fineserve.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

from .embeddings import (
    EMBEDDING_TASKS,
    Recommendations,
    TabularPrediction,
    options_message,
    recommend_request,
    recommendations,
    tabular_predictions,
    tabular_request,
)
from .errors import DeadlineExceeded, Internal, Unavailable, from_rpc_error
from .interpretation import Heatmap, LabelScores, overlay_path
from .jobs import check_job, is_terminal
from .progress import ProgressBar
from .segmentation import Segmentation

__all__ = ["Classification", "Client", "Heatmap", "LabelScores", "parse_base", "parse_model_ref", "tls_credentials"]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_PAGE_SIZE = 200
_CLASSIFY_BATCH = 64
# Already-compressed files are stored in the upload zip as they are; deflating them again only costs time.
_STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".zip", ".gz", ".bz2", ".xz"})
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
TEXT_TASKS = (training_pb2.LANGUAGE_MODEL, training_pb2.TEXT_CLASSIFICATION)

F = TypeVar("F", bound=Callable[..., Any])


def _rpc(method: F) -> F:
    """Turn ``grpc.RpcError`` raised by ``method`` (or while iterating a generator method) into the
    matching :class:`~fineserve_client.errors.FineserveError`."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(*args, **kwargs)
            except grpc.RpcError as e:
                raise from_rpc_error(e) from e

        return generator_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    return wrapper  # type: ignore[return-value]


# -- argument parsing ---------------------------------------------------------------------------------


def _enum(enum_type: Any, value: str | int, what: str, prefix: str = "") -> int:
    """An enum value from its name (case-insensitive, ``-`` as ``_``, optional ``prefix``) or number."""
    names = [n for n in enum_type.keys() if not n.endswith("_UNSPECIFIED")]  # noqa: SIM118 (not a dict)
    if isinstance(value, int) and not isinstance(value, bool):
        if value in enum_type.values():
            return value
    elif isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        for candidate in (key, prefix + key):
            if candidate in names:
                return enum_type.Value(candidate)
    choices = ", ".join(n.lower() for n in names)
    raise ValueError(f"unknown {what} {value!r}; expected one of: {choices}")


def parse_base(spec: str | training_pb2.BaseModel) -> training_pb2.BaseModel:
    """Parse where a fine-tune starts from into a ``BaseModel``.

    * ``"imagenet"`` or ``"torchvision"``: torchvision's DEFAULT weights for the architecture;
    * ``"torchvision:IMAGENET1K_V1"``: a member of torchvision's weight enum;
    * ``"file:/path/weights.safetensors"``: a weights file on the workers (under the server's allowed roots);
    * ``"model:NAME"`` or ``"model:NAME/VERSION"``: a model in the store (latest version without VERSION);
    * ``"none"`` or ``"random"``: random initialisation.

    Anything else raises ``ValueError``. A ``BaseModel`` message is returned as it is.
    """
    if isinstance(spec, training_pb2.BaseModel):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"base must be a string, not {type(spec).__name__}")
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    base = training_pb2.BaseModel()
    if not sep:
        if kind in ("imagenet", "torchvision"):
            base.torchvision.SetInParent()
            return base
        if kind in ("none", "random"):
            base.random_init = True
            return base
    elif kind == "torchvision" and rest.strip():
        base.torchvision.weights = rest.strip()
        return base
    elif kind == "file" and rest.strip():
        path = rest.strip()
        if path.startswith("//"):  # file:///abs/path
            path = path[2:]
        if path:
            base.weights_file = path
            return base
    elif kind == "model" and rest.strip():
        name, version = parse_model_ref(rest.strip())
        base.stored_model.name = name
        base.stored_model.version = version
        return base
    raise ValueError(
        f"unknown base {spec!r}; expected imagenet, torchvision[:WEIGHTS], file:PATH, "
        "model:NAME[/VERSION] or none"
    )


def parse_model_ref(text: str, version: int = 0) -> tuple[str, int]:
    """Split ``"NAME"`` or ``"NAME/VERSION"`` into ``(name, version)``; ``version`` applies to a bare name."""
    name, sep, ver = text.strip().partition("/")
    if not name:
        raise ValueError(f"invalid model reference {text!r}: empty name")
    if not sep:
        return name, int(version)
    try:
        parsed = int(ver)
    except ValueError:
        raise ValueError(f"invalid model reference {text!r}: version must be an integer") from None
    if parsed < 0 or (version and parsed != version):
        raise ValueError(
            f"invalid model reference {text!r}" + (f" with version={version}" if version else "")
        )
    return name, parsed


def _model_ref(model: str | common_pb2.ModelRef, version: int = 0) -> common_pb2.ModelRef:
    if isinstance(model, common_pb2.ModelRef):
        return model
    name, ver = parse_model_ref(model, version)
    return common_pb2.ModelRef(name=name, version=ver)


def _image(item: Any, index: int) -> common_pb2.Image:
    if isinstance(item, common_pb2.Image):
        return item
    if isinstance(item, (str, os.PathLike)):
        return common_pb2.Image(data=Path(item).read_bytes(), name=os.fspath(item))
    if isinstance(item, (bytes, bytearray, memoryview)):
        return common_pb2.Image(data=bytes(item), name=f"bytes[{index}]")
    raise TypeError(f"image {index}: expected a path or bytes, not {type(item).__name__}")


def _metadata(metadata: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    if metadata is None:
        return ()
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    return tuple((str(k).lower(), v) for k, v in items)


def _read_pem(path: str | os.PathLike[str] | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {os.fspath(path)!r}: {e}") from e


def tls_credentials(
    ca_file: str | os.PathLike[str] | None = None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM files.

    ``ca_file``: the CA bundle that signed the server's certificate (``None``: the system's roots).
    ``client_cert`` and ``client_key``: this client's certificate chain and key, for servers that require
    mutual TLS (both or neither).
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together (mutual TLS needs both)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem(ca_file, "CA file"),
        private_key=_read_pem(client_key, "client key"),
        certificate_chain=_read_pem(client_cert, "client certificate"),
    )


# -- datasets: archive preparation --------------------------------------------------------------------


def _zip_folder(folder: Path, dest: Path) -> int:
    """Zip the regular files under ``folder`` into ``dest`` with relative POSIX names, in sorted order,
    without following symbolic links. Returns the number of files."""
    count = 0
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, strict_timestamps=False) as zf:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                arcname = os.path.relpath(path, folder).replace(os.sep, "/")
                stored = os.path.splitext(name)[1].lower() in _STORED_SUFFIXES
                zf.write(path, arcname, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
                count += 1
    return count


def _archive_format(path: Path) -> int:
    name = path.name.lower()
    if name.endswith(".zip"):
        return datasets_pb2.ZIP
    if name.endswith(_TAR_SUFFIXES):
        return datasets_pb2.TAR
    if name.endswith(".csv"):
        return datasets_pb2.CSV
    raise ValueError(f"{path}: not a folder, .zip, .tar, .tar.gz, .tgz or .csv file")


def _default_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", *_TAR_SUFFIXES, ".csv"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "dataset"


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one image, most probable first."""

    name: str
    """The input's name: the path as given, or ``bytes[i]`` for raw bytes."""
    top: list[tuple[str, float]] = field(default_factory=list)
    """``(label, probability)`` pairs."""
    model: str = ""
    """The model version that answered, as ``"name/version"``."""

    @property
    def label(self) -> str | None:
        """The most probable label."""
        return self.top[0][0] if self.top else None

    @property
    def probability(self) -> float | None:
        """The most probable label's probability."""
        return self.top[0][1] if self.top else None


# -- the client ---------------------------------------------------------------------------------------


class Client:
    """A connection to a fineserve server.

    Unary calls use ``timeout`` seconds as their deadline (``None``: no deadline); streaming calls (uploads,
    job watching) have no deadline unless one is passed to them. ``metadata`` (a mapping or pairs) is sent
    with every call. Every method raises :class:`~fineserve_client.errors.FineserveError` subclasses for gRPC
    errors (``Unauthenticated`` for a missing or unknown API key). Use as a context manager, or call
    :meth:`close`.

    Security:

    * ``api_key``: sent as ``authorization: Bearer <key>`` with every call (servers with API keys need it;
      it decides the tenant whose datasets, jobs and models you see). Use it over TLS: on a plaintext
      channel the key travels in clear.
    * TLS: ``tls=True`` (the system's CA roots), or ``ca_file`` (a PEM bundle that signed the server's
      certificate); for mutual TLS also ``client_cert`` and ``client_key`` (PEM). ``server_name`` overrides
      the host name checked against the certificate (when the target is an IP address, say).
      ``credentials`` (``grpc.ChannelCredentials``) replaces all of these.
    Without any of them the channel is insecure (plaintext).
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout: float | None = 60.0,
        metadata: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        channel_options: Sequence[tuple[str, Any]] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = _metadata(metadata)
        if api_key is not None:
            key = api_key.strip()
            if not key or not key.isprintable() or not key.isascii():
                raise ValueError("api_key must be a non-empty printable ASCII string")
            kept = tuple(m for m in self._metadata if m[0] != "authorization")
            self._metadata = (*kept, ("authorization", f"Bearer {key}"))
        wants_tls = tls or any(f is not None for f in (ca_file, client_cert, client_key))
        if credentials is None and wants_tls:
            credentials = tls_credentials(ca_file, client_cert, client_key)
        options = {
            "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
            "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        }
        if server_name:
            options["grpc.ssl_target_name_override"] = server_name
        options.update(dict(channel_options or ()))
        opts = list(options.items())
        if credentials is not None:
            self.channel: grpc.Channel = grpc.secure_channel(target, credentials, options=opts)
        else:
            self.channel = grpc.insecure_channel(target, options=opts)
        self._datasets = datasets_pb2_grpc.DatasetsStub(self.channel)
        self._training = training_pb2_grpc.TrainingStub(self.channel)
        self._models = models_pb2_grpc.ModelsStub(self.channel)
        self._inference = inference_pb2_grpc.InferenceStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def _call(self, rpc: Callable[..., Any], request: Any) -> Any:
        return rpc(request, timeout=self.timeout, metadata=self._metadata)

    def _pages(self, rpc: Callable[..., Any], request: Any, items: str) -> list[Any]:
        out: list[Any] = []
        request.page.page_size = _PAGE_SIZE
        token = ""
        while True:
            request.page.page_token = token
            response = self._call(rpc, request)
            out.extend(getattr(response, items))
            if not response.next_page_token or response.next_page_token == token:
                return out
            token = response.next_page_token

    # -- datasets -------------------------------------------------------------------------------------

    @_rpc
    def upload_dataset(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        layout: str | int = "image_folders",
        chunk_size: int = 1 << 20,
        progress: bool = False,
        *,
        timeout: float | None = None,
    ) -> datasets_pb2.Dataset:
        """Upload a dataset and return the server's record of it.

        ``path`` is a folder (zipped first, into a temporary file, with relative names and no links
        followed) or a ``.zip``, ``.tar``/``.tar.gz``/``.tgz`` (or ``.csv``) file. ``name`` defaults to the
        folder or file name; ``layout`` is a ``DatasetLayout`` name such as ``"image_folders"``. The archive
        is sent in ``chunk_size`` pieces after a header carrying its sha256 and size; ``progress`` shows
        the bytes sent on stderr. ``timeout`` (seconds) bounds the whole upload; by default it has none.
        """
        src = Path(path)
        layout_value = _enum(datasets_pb2.DatasetLayout, layout, "layout")
        if not 0 < chunk_size <= MAX_MESSAGE_BYTES - 1024:
            raise ValueError(f"chunk_size must be between 1 and {MAX_MESSAGE_BYTES - 1024} bytes")
        temp: Path | None = None
        try:
            if src.is_dir():
                fd, temp_name = tempfile.mkstemp(prefix="fineserve-upload-", suffix=".zip")
                os.close(fd)
                temp = Path(temp_name)
                if _zip_folder(src, temp) == 0:
                    raise ValueError(f"{src}: the folder holds no files")
                archive, fmt = temp, datasets_pb2.ZIP
                default_name = src.resolve().name
            elif src.is_file():
                archive, fmt = src, _archive_format(src)
                default_name = _default_name(src)
            else:
                raise FileNotFoundError(f"{src}: no such file or folder")
            sha256, size = _sha256_file(archive)
            header = datasets_pb2.UploadHeader(
                name=name or default_name, layout=layout_value, format=fmt, sha256=sha256, size_bytes=size
            )
            bar = ProgressBar(enabled=progress)

            def requests() -> Iterator[datasets_pb2.UploadDatasetRequest]:
                yield datasets_pb2.UploadDatasetRequest(header=header)
                sent = 0
                with open(archive, "rb") as f:
                    while chunk := f.read(chunk_size):
                        sent += len(chunk)
                        yield datasets_pb2.UploadDatasetRequest(chunk=chunk)
                        bar.transfer(sent, size)

            try:
                return self._datasets.UploadDataset(requests(), timeout=timeout, metadata=self._metadata)
            finally:
                bar.close()
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    @_rpc
    def register_dataset(
        self, uri: str | os.PathLike[str], name: str, layout: str | int = "image_folders"
    ) -> datasets_pb2.Dataset:
        """Register a folder that already lies under one of the server's allowed roots (no copy)."""
        request = datasets_pb2.RegisterDatasetRequest(
            name=name, layout=_enum(datasets_pb2.DatasetLayout, layout, "layout"), uri=os.fspath(uri)
        )
        return self._call(self._datasets.RegisterDataset, request)

    @_rpc
    def get_dataset(self, id: str) -> datasets_pb2.Dataset:
        """One dataset by id."""
        return self._call(self._datasets.GetDataset, datasets_pb2.GetDatasetRequest(id=id))

    @_rpc
    def list_datasets(self, layout: str | int | None = None) -> list[datasets_pb2.Dataset]:
        """Every dataset (all pages), optionally only those with ``layout``."""
        request = datasets_pb2.ListDatasetsRequest()
        if layout is not None:
            request.layout = _enum(datasets_pb2.DatasetLayout, layout, "layout")
        return self._pages(self._datasets.ListDatasets, request, "datasets")

    @_rpc
    def delete_dataset(self, id: str) -> None:
        """Delete a dataset (and, for uploads, its files)."""
        self._call(self._datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(id=id))

    # -- training -------------------------------------------------------------------------------------

    @_rpc
    def create_fine_tune_job(
        self,
        dataset_id: str,
        model_name: str,
        arch: str = "resnet18",
        task: str | int = "image_classification",
        base: str | training_pb2.BaseModel | None = None,
        epochs: int | None = None,
        freeze_epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        image_size: int | None = None,
        precision: str | int | None = None,
        request_id: str | None = None,
        *,
        resources: common_pb2.Resources | Mapping[str, Any] | None = None,
        collab: training_pb2.CollabOptions | Mapping[str, Any] | None = None,
        tabular: training_pb2.TabularOptions | Mapping[str, Any] | None = None,
        text: training_pb2.TextOptions | Mapping[str, Any] | None = None,
        **more_hyperparameters: Any,
    ) -> training_pb2.Job:
        """Queue a fine-tune job and return it (state QUEUED).

        ``base`` is parsed by :func:`parse_base`; left as ``None`` it is ``"imagenet"`` for image tasks.
        Hyperparameters left as ``None`` are not sent, so the server's defaults apply; every other
        ``Hyperparameters`` field (``lr_mult``, ``weight_decay``, ``pct_start``, ``div_factor``, ``moms_max``,
        ``group_lrs``, ``stages``, ``label_smoothing``, ``mixup_alpha``, ``grad_clip``, ``early_stopping``,
        ``auto_lr``, ...) is accepted as a keyword; unknown names raise ``TypeError``. ``precision`` is ``"auto"``,
        ``"fp32"``, ``"bf16"`` or ``"fp16"``. ``resources`` is a ``Resources`` message or a mapping of its fields.
        ``request_id`` makes the call idempotent.
        For ``task="collaborative_filtering"`` (``arch`` ``"dot"`` or ``"neural"``) and ``task="tabular"``, ``base``
        is not sent and ``collab`` / ``tabular`` carry the options (``CollabOptions`` / ``TabularOptions`` or a
        mapping of their fields, e.g. ``tabular={"target": "salary", "categorical": ["workclass"]}``).
        For ``task="language_model"`` and ``"text_classification"``, ``text`` carries the AWD-LSTM settings
        (``TextOptions`` or a mapping, e.g. ``text={"emb_size": 32, "bptt": 30}``) and the default ``arch`` is
        not sent (the service picks ``awd_lstm``); ``base`` is ``"none"`` or ``"model:LM_NAME"``, and must be given.
        """
        hyper = _hyperparameters(
            epochs=epochs,
            freeze_epochs=freeze_epochs,
            lr=lr,
            batch_size=batch_size,
            image_size=image_size,
            precision=precision,
            **more_hyperparameters,
        )
        task_id = _enum(training_pb2.Task, task, "task")
        embedding = task_id in EMBEDDING_TASKS
        request = training_pb2.CreateFineTuneJobRequest(
            task=task_id,
            model_name=model_name,
            arch=_arch(task_id, arch),
            dataset_id=dataset_id,
            hyperparameters=hyper,
            request_id=request_id or "",
        )
        if not embedding and (start := _base(task_id, base)) is not None:
            request.base.CopyFrom(start)
        if collab is not None:
            request.collab.CopyFrom(options_message(training_pb2.CollabOptions, collab))
        if tabular is not None:
            request.tabular.CopyFrom(options_message(training_pb2.TabularOptions, tabular))
        if text is not None:
            request.text.CopyFrom(options_message(training_pb2.TextOptions, text))
        if resources is not None:
            request.resources.CopyFrom(
                resources
                if isinstance(resources, common_pb2.Resources)
                else common_pb2.Resources(**resources)
            )
        return self._call(self._training.CreateFineTuneJob, request)

    @_rpc
    def find_learning_rate(
        self,
        dataset_id: str,
        arch: str = "resnet18",
        task: str | int = "image_classification",
        base: str | training_pb2.BaseModel | None = None,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_batches: int = 100,
        freeze_to: int | None = None,
        request_id: str | None = None,
        *,
        resources: common_pb2.Resources | Mapping[str, Any] | None = None,
        text: training_pb2.TextOptions | Mapping[str, Any] | None = None,
        **hyperparameters: Any,
    ) -> training_pb2.Job:
        """Queue an LR range test (a job); ``wait`` for it, then read ``job.result.lr_finder`` or plot it with
        :func:`fineserve_client.plots.plot_lr_finder`. Text tasks take ``text`` and ``base`` as
        :meth:`create_fine_tune_job` does."""
        task_id = _enum(training_pb2.Task, task, "task")
        request = training_pb2.FindLearningRateRequest(
            task=task_id,
            arch=_arch(task_id, arch),
            base=_base(task_id, base),
            dataset_id=dataset_id,
            hyperparameters=_hyperparameters(**hyperparameters),
            start_lr=start_lr,
            end_lr=end_lr,
            num_batches=num_batches,
            request_id=request_id or "",
        )
        if freeze_to is not None:
            request.freeze_to = freeze_to
        if text is not None:
            request.text.CopyFrom(options_message(training_pb2.TextOptions, text))
        if resources is not None:
            request.resources.CopyFrom(
                resources if isinstance(resources, common_pb2.Resources) else common_pb2.Resources(**resources))
        return self._call(self._training.FindLearningRate, request)

    @_rpc
    def get_job(self, id: str) -> training_pb2.Job:
        """One job by id."""
        return self._call(self._training.GetJob, training_pb2.GetJobRequest(id=id))

    @_rpc
    def list_jobs(
        self, states: Iterable[str | int] | None = None, model_name: str | None = None
    ) -> list[training_pb2.Job]:
        """Every job (all pages, newest first), optionally only in ``states`` or producing ``model_name``."""
        request = training_pb2.ListJobsRequest(model_name=model_name or "")
        if states is not None:
            if isinstance(states, (str, int)):
                states = [states]
            request.states.extend(_enum(training_pb2.JobState, s, "job state") for s in states)
        return self._pages(self._training.ListJobs, request, "jobs")

    @_rpc
    def cancel_job(self, id: str) -> training_pb2.Job:
        """Ask a job to stop; returns the job (unchanged when it had already finished)."""
        return self._call(self._training.CancelJob, training_pb2.CancelJobRequest(id=id))

    @_rpc
    def watch_job(
        self, id: str, from_sequence: int = 0, *, timeout: float | None = None
    ) -> Iterator[training_pb2.JobEvent]:
        """Yield the job's events from ``from_sequence`` on (0: from the first); the iterator ends after
        the event that puts the job in a terminal state. No deadline unless ``timeout`` is given."""
        call = self._training.WatchJob(
            training_pb2.WatchJobRequest(id=id, from_sequence=from_sequence),
            timeout=timeout,
            metadata=self._metadata,
        )
        try:
            yield from call
        finally:
            call.cancel()  # a no-op when the stream has ended; stops it when the caller stopped early

    @_rpc
    def wait(
        self,
        id: str,
        progress: bool | ProgressBar = True,
        timeout: float | None = None,
        *,
        check: bool = False,
        max_reconnects: int = 5,
    ) -> training_pb2.Job:
        """Follow the job until it is SUCCEEDED, FAILED or CANCELLED and return the final ``Job``.

        The final job is returned whatever its state: a failed job is an outcome, not a failed call. Check
        it with :mod:`fineserve_client.jobs` (``succeeded(job)``, ``check_job(job)``) or pass
        ``check=True`` to raise :class:`~fineserve_client.errors.JobFailed` for FAILED and CANCELLED.

        ``progress`` shows a progress bar on stderr. When the event stream breaks with UNAVAILABLE the
        watch resumes from the event after the last one seen, up to ``max_reconnects`` times in a row.
        ``timeout`` (seconds) bounds the whole wait (``DeadlineExceeded`` when it runs out).
        """
        bar = progress if isinstance(progress, ProgressBar) else ProgressBar(enabled=bool(progress))
        deadline = None if timeout is None else time.monotonic() + timeout
        next_sequence = 0
        failures = 0
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(f"job {id} did not finish within {timeout} s")
                finished = False
                try:
                    for event in self.watch_job(id, next_sequence, timeout=remaining):
                        next_sequence = event.sequence + 1
                        failures = 0
                        bar.event(event)
                        if event.WhichOneof("event") == "state" and is_terminal(event.state.state):
                            finished = True
                            break
                    else:
                        # The stream ended without a terminal event: trust the job record.
                        finished = is_terminal(self.get_job(id))
                        if not finished:
                            raise Unavailable(f"the event stream of job {id} ended before the job finished")
                except Unavailable:
                    failures += 1
                    if failures > max_reconnects:
                        raise
                    delay = min(0.25 * 2 ** (failures - 1), 5.0)
                    if deadline is not None:
                        delay = min(delay, max(deadline - time.monotonic(), 0.0))
                    time.sleep(delay)
                    continue
                if finished:
                    break
        finally:
            bar.close()
        job = self.get_job(id)
        return check_job(job) if check else job

    def fine_tune(
        self,
        dataset_id: str,
        model_name: str,
        *,
        progress: bool | ProgressBar = True,
        timeout: float | None = None,
        check: bool = False,
        **job_options: Any,
    ) -> training_pb2.Job:
        """:meth:`create_fine_tune_job` then :meth:`wait`; returns the final ``Job`` (see :meth:`wait`)."""
        job = self.create_fine_tune_job(dataset_id, model_name, **job_options)
        return self.wait(job.id, progress=progress, timeout=timeout, check=check)

    # -- models ---------------------------------------------------------------------------------------

    @_rpc
    def list_models(self, name: str | None = None) -> list[models_pb2.Model]:
        """Every stored model version (all pages; by name, then version descending), optionally of one
        ``name``."""
        return self._pages(self._models.ListModels, models_pb2.ListModelsRequest(name=name or ""), "models")

    @_rpc
    def get_model(self, name: str, version: int = 0) -> models_pb2.Model:
        """One model version; ``version`` 0 (or a bare name) is the latest. ``"name/3"`` also works."""
        return self._call(self._models.GetModel, models_pb2.GetModelRequest(ref=_model_ref(name, version)))

    @_rpc
    def delete_model(self, name: str, version: int = 0) -> list[common_pb2.ModelRef]:
        """Delete one version, or every version of ``name`` with version 0; returns what was deleted."""
        request = models_pb2.DeleteModelRequest(ref=_model_ref(name, version))
        return list(self._call(self._models.DeleteModel, request).deleted)

    # -- inference ------------------------------------------------------------------------------------

    @_rpc
    def classify(
        self,
        model: str | common_pb2.ModelRef,
        images: Sequence[str | os.PathLike[str] | bytes],
        top_k: int = 5,
        version: int = 0,
        *,
        batch_size: int = _CLASSIFY_BATCH,
    ) -> list[Classification]:
        """Classify images with a single-label model; one :class:`Classification` per image, in order.

        ``images`` items are file paths or encoded image bytes. ``model`` is a name (``version`` 0: the
        latest) or ``"name/version"``. Requests carry at most ``batch_size`` images each.
        """
        if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)):
            raise TypeError("images must be a list; use classify_one for a single image")
        ref = _model_ref(model, version)
        results: list[Classification] = []
        batches = self._image_batches(images, batch_size, self._inference.Classify,
                                      lambda batch: inference_pb2.ClassifyRequest(model=ref, images=batch, top_k=top_k))
        for sent, result, response in batches:
            results.append(
                Classification(
                    name=result.name or sent.name,
                    top=[(s.label, s.probability) for s in result.top],
                    model=_answered(response),
                )
            )
        return results

    def _image_batches(
        self,
        images: Sequence[str | os.PathLike[str] | bytes],
        batch_size: int,
        rpc: Callable[..., Any],
        request_for: Callable[[list[common_pb2.Image]], Any],
    ) -> Iterator[tuple[common_pb2.Image, Any, Any]]:
        """Send images in requests of at most batch_size; yield (image sent, its result, the response)."""
        if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)):
            raise TypeError("images must be a list of paths or bytes")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        items = [_image(item, i) for i, item in enumerate(images)]
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            response = self._call(rpc, request_for(batch))
            if len(response.results) != len(batch):
                raise Internal(f"the server returned {len(response.results)} results for {len(batch)} images")
            for sent, result in zip(batch, response.results, strict=True):
                yield sent, result, response

    @_rpc
    def recommend(
        self,
        model: str | common_pb2.ModelRef,
        user_id: str | None = None,
        *,
        users: Sequence[str] | None = None,
        similar_to: str | None = None,
        pairs: Sequence[tuple[str, str]] | None = None,
        top_by_bias: bool = False,
        k: int = 10,
        popularity_fallback: bool = False,
        version: int = 0,
    ) -> Recommendations:
        """Ask a collaborative-filtering model one of: the top-``k`` unrated items for ``user_id`` (or for each of
        ``users``, one batched call), the ``k`` items most similar to ``similar_to``, predicted ratings of
        ``pairs`` of (user id, item id), or the ``k`` items with the highest learnt bias (``top_by_bias``).
        An unknown id raises ``NotFound`` unless ``popularity_fallback`` asks for popular items instead."""
        request = recommend_request(_model_ref(model, version), user_id, users, similar_to, pairs, top_by_bias, k,
                                    popularity_fallback)
        return recommendations(self._call(self._inference.Recommend, request))

    @_rpc
    def predict_tabular(
        self,
        model: str | common_pb2.ModelRef,
        rows: Sequence[Mapping[str, Any]],
        top_k: int = 5,
        version: int = 0,
    ) -> list[TabularPrediction]:
        """Predict rows given as column -> value mappings with a tabular model; a missing column or ``None`` is a
        missing value, an unseen category uses the model's "unknown" embedding, an unknown column is refused."""
        request = tabular_request(_model_ref(model, version), rows, top_k)
        return tabular_predictions(self._call(self._inference.PredictTabular, request))

    def classify_one(
        self,
        model: str | common_pb2.ModelRef,
        image: str | os.PathLike[str] | bytes,
        top_k: int = 5,
        version: int = 0,
    ) -> Classification:
        """Classify one image (a path or bytes)."""
        return self.classify(model, [image], top_k=top_k, version=version)[0]

    @_rpc
    def score_labels(
        self,
        model: str | common_pb2.ModelRef,
        images: Sequence[str | os.PathLike[str] | bytes],
        threshold: float | None = None,
        version: int = 0,
        *,
        batch_size: int = _CLASSIFY_BATCH,
    ) -> list[LabelScores]:
        """Score every label of a multi-label model for each image; one :class:`LabelScores` per image.

        ``predicted`` holds the labels over the thresholds tuned at training time, or over ``threshold``
        (0-1) for every label when given.
        """
        ref = _model_ref(model, version)

        def request_for(batch: list[common_pb2.Image]) -> inference_pb2.ScoreLabelsRequest:
            request = inference_pb2.ScoreLabelsRequest(model=ref, images=batch)
            if threshold is not None:
                request.threshold = threshold
            return request

        return [LabelScores(name=r.name or sent.name, scores={s.label: s.score for s in r.scores},
                            predicted=list(r.predicted), model=_answered(response))
                for sent, r, response in self._image_batches(images, batch_size, self._inference.ScoreLabels,
                                                             request_for)]

    @_rpc
    def explain(
        self,
        model: str | common_pb2.ModelRef,
        images: Sequence[str | os.PathLike[str] | bytes],
        target: str = "",
        version: int = 0,
        *,
        save_overlays: bool = False,
        batch_size: int = _CLASSIFY_BATCH,
    ) -> list[Heatmap]:
        """Grad-CAM heatmaps for ``target`` (a class or label; ``""``: each image's top prediction); one
        :class:`Heatmap` per image. With ``save_overlays``, each path input's overlay PNG is written next to
        it (``photo.jpg`` -> ``photo.gradcam.png``); ``Heatmap.save_overlay`` writes one anywhere.
        """
        ref = _model_ref(model, version)
        results: list[Heatmap] = []
        batches = self._image_batches(
            images, batch_size, self._inference.Explain,
            lambda batch: inference_pb2.ExplainRequest(model=ref, images=batch, target=target))
        for sent, r, response in batches:
            w = r.grid_width
            grid = [list(r.grid[row * w:(row + 1) * w]) for row in range(r.grid_height)]
            results.append(Heatmap(r.name or sent.name, r.target, grid, r.overlay_png, _answered(response)))
        if save_overlays:
            for item, heatmap in zip(images, results, strict=True):
                if isinstance(item, (str, os.PathLike)):
                    heatmap.save_overlay(overlay_path(item))
        return results

    @_rpc
    def segment(
        self,
        model: str | common_pb2.ModelRef,
        images: Sequence[str | os.PathLike[str] | bytes],
        version: int = 0,
        *,
        probabilities: bool = False,
        save_to: str | os.PathLike[str] | None = None,
        batch_size: int = _CLASSIFY_BATCH,
    ) -> list[Segmentation]:
        """Segment images with a segmentation model; one :class:`Segmentation` per image, in order.

        Each mask is at its image's size. ``probabilities`` also fetches per-class probability maps (large).
        ``save_to`` writes each image's mask and colour overlay there (the overlay needs Pillow).
        """
        ref = _model_ref(model, version)
        results: list[Segmentation] = []
        batches = self._image_batches(images, batch_size, self._inference.Segment, lambda batch: (
            inference_pb2.SegmentRequest(model=ref, images=batch, include_probabilities=probabilities)))
        for sent, result, response in batches:
            seg = Segmentation.from_proto(result, list(response.classes), sent.name, _answered(response))
            if save_to is not None:
                seg.save(save_to, sent.data)
            results.append(seg)
        return results

    @_rpc
    def predict_text(
        self,
        model: str | common_pb2.ModelRef,
        texts: str | Sequence[str],
        top_k: int = 0,
        version: int = 0,
        *,
        batch_size: int = _CLASSIFY_BATCH,
    ) -> list[Classification]:
        """Classify texts with a TEXT_CLASSIFICATION (ULMFiT) model: one :class:`Classification` per text, in
        order, named ``text[i]``, with ``top_k`` labels (0: every label) most probable first. An empty text is
        ``InvalidArgument``."""
        items = [texts] if isinstance(texts, str) else list(texts)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ref = _model_ref(model, version)
        results: list[Classification] = []
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            request = inference_pb2.PredictTextRequest(model=ref, texts=batch, top_k=top_k)
            response = self._call(self._inference.PredictText, request)
            if len(response.results) != len(batch):
                raise Internal(f"the server returned {len(response.results)} results for {len(batch)} texts")
            results.extend(
                Classification(name=f"text[{start + i}]", top=[(s.label, s.probability) for s in result.top],
                               model=_answered(response))
                for i, result in enumerate(response.results)
            )
        return results


def _answered(response: Any) -> str:
    """The "name/version" that answered an inference call."""
    return f"{response.model.name}/{response.model.version}" if response.HasField("model") else ""


def _arch(task: int, arch: str) -> str:
    """The default ("resnet18") is an image backbone: for other tasks it is not sent and the service picks."""
    return "" if arch == "resnet18" and (task in EMBEDDING_TASKS or task in TEXT_TASKS) else arch


def _base(task: int, base: str | training_pb2.BaseModel | None) -> training_pb2.BaseModel | None:
    """parse_base(base); unset: ImageNet weights for image tasks, and nothing for text tasks, which have no
    default start (the service names the choices)."""
    if base is None:
        return None if task in TEXT_TASKS else parse_base("imagenet")
    return parse_base(base)


def _hyperparameters(**values: Any) -> training_pb2.Hyperparameters:
    """A Hyperparameters message from keywords: scalars, ``group_lrs`` (a list), ``stages`` (a list of
    ``TrainingStage`` messages or dicts of its fields) and ``early_stopping`` (a message or a dict)."""
    fields = training_pb2.Hyperparameters.DESCRIPTOR.fields_by_name
    for key in values:
        if key not in fields:
            raise TypeError(f"unknown hyperparameter {key!r}; known: {', '.join(sorted(fields))}")
    hyper = training_pb2.Hyperparameters()
    for key, value in values.items():
        if value is None:
            continue
        if key == "precision":
            value = _enum(training_pb2.Precision, value, "precision", prefix="PRECISION_")
        if key == "group_lrs":
            hyper.group_lrs.extend(value)
        elif key == "stages":
            hyper.stages.extend(s if isinstance(s, training_pb2.TrainingStage) else training_pb2.TrainingStage(**s)
                                for s in value)
        elif key == "early_stopping":
            hyper.early_stopping.CopyFrom(value if isinstance(value, training_pb2.EarlyStopping)
                                          else training_pb2.EarlyStopping(**value))
        else:
            setattr(hyper, key, value)
    return hyper
