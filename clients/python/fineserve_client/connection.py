"""The channel under every :class:`~fineserve_client.Client` call: target, TLS and API key, deadlines, paging,
and the mapping of ``grpc.RpcError`` to :class:`~fineserve_client.errors.FineserveError`, kept here so that
each area's methods say only what they ask the server."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from fineserve.v1 import datasets_pb2_grpc, inference_pb2_grpc, models_pb2_grpc, training_pb2_grpc

from .errors import from_rpc_error

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Both ways: an upload chunk, a batch of images or a segmentation's probability maps fit under it."""
PAGE_SIZE = 200

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound="Connection")


def rpc_method(method: F) -> F:
    """Turn ``grpc.RpcError`` raised by ``method`` (or while iterating a generator method) into the
    matching :class:`~fineserve_client.errors.FineserveError`, so callers never catch gRPC's own type."""
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


def _metadata(metadata: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    if metadata is None:
        return ()
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    return tuple((str(k).lower(), v) for k, v in items)  # gRPC refuses upper-case metadata keys


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


class Connection:
    """The channel, the four service stubs and how a call is made; the area mixins build on it (see
    :class:`~fineserve_client.Client` for the arguments)."""

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

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r})"

    def _call(self, rpc: Callable[..., Any], request: Any) -> Any:
        """A unary call with the client's deadline and metadata."""
        return rpc(request, timeout=self.timeout, metadata=self._metadata)

    def _pages(self, rpc: Callable[..., Any], request: Any, items: str) -> list[Any]:
        """Every item of a paged List call; stops on a repeated token, so a buggy server cannot loop it."""
        out: list[Any] = []
        request.page.page_size = PAGE_SIZE
        token = ""
        while True:
            request.page.page_token = token
            response = self._call(rpc, request)
            out.extend(getattr(response, items))
            if not response.next_page_token or response.next_page_token == token:
                return out
            token = response.next_page_token
