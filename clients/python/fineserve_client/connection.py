"""The channel under every :class:`~fineserve_client.Client` and :class:`~fineserve_client.AsyncClient` call:
the settings (arguments, then ``FINESERVE_*`` variables), TLS and API key, deadlines and retries, and how an
area's operation is run. An operation is written once, as a *plan*: a generator that yields the :class:`Call`\\ s
it needs and receives their answers; :class:`Connection` runs plans with blocking calls, the asyncio connection
(``aio.py``) with awaited ones, so the two clients share every request builder and result conversion."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import grpc

from fineserve.v1 import datasets_pb2_grpc, inference_pb2_grpc, models_pb2_grpc, training_pb2_grpc

from .errors import from_rpc_error
from .retries import RetryPolicy

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Both ways: an upload chunk, a batch of images or a segmentation's probability maps fit under it."""
PAGE_SIZE = 200
DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 60.0

T = TypeVar("T")
C = TypeVar("C", bound="BaseConnection")

# -- settings --------------------------------------------------------------------------------------------

ENV = {
    "target": "FINESERVE_TARGET",
    "api_key": "FINESERVE_API_KEY",
    "tls": "FINESERVE_TLS",
    "ca_file": "FINESERVE_CA_FILE",
    "client_cert": "FINESERVE_CLIENT_CERT",
    "client_key": "FINESERVE_CLIENT_KEY",
    "server_name": "FINESERVE_SERVER_NAME",
    "timeout": "FINESERVE_TIMEOUT",
    "max_attempts": "FINESERVE_MAX_ATTEMPTS",
}
"""Each setting's environment variable."""


@dataclass(frozen=True)
class Settings:
    """Where and how to connect. :meth:`from_env` is the one place the SDK and the CLI read ``FINESERVE_*``.

    ``timeout``: the deadline of each unary call in seconds, retries included (``None``: none).
    ``max_attempts``: tries of a retryable call (see :class:`~fineserve_client.retries.RetryPolicy`).
    """

    target: str = DEFAULT_TARGET
    api_key: str | None = None
    tls: bool = False
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    max_attempts: int = RetryPolicy.max_attempts

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """Each setting from ``given`` when it is not ``None``, else from its ``FINESERVE_*`` variable (see
        :data:`ENV`) when set and not empty, else the default. ``FINESERVE_TLS`` is true/false (1/0, yes/no),
        ``FINESERVE_TIMEOUT`` seconds or ``none``. A bad value is a ``ValueError`` naming the variable.
        ``timeout=None`` means "not given" here; pass ``float("inf")`` for no deadline."""
        unknown = set(given) - set(ENV)
        if unknown:
            raise TypeError(f"unknown setting(s) {sorted(unknown)}; known: {', '.join(ENV)}")
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            if given.get(name) is not None:
                values[name] = given[name]
            elif env.get(var, "").strip():
                values[name] = _parse_env(name, var, env[var].strip())
        if values.get("timeout") == float("inf"):
            values["timeout"] = None
        return cls(**values)

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {self.timeout!r}")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, f.name, os.fspath(value))


def _parse_env(name: str, var: str, text: str) -> Any:
    try:
        if name == "tls":
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError("expected true or false")
            return text.lower() in ("1", "true", "yes", "on")
        if name == "timeout":
            seconds = float("inf") if text.lower() == "none" else float(text)
            if not seconds > 0:
                raise ValueError("expected a positive number of seconds or none")
            return seconds
        if name == "max_attempts":
            if int(text) < 1:
                raise ValueError("expected an integer >= 1")
            return int(text)
    except ValueError as e:
        raise ValueError(f"${var}={text!r}: {e}") from None
    return text


# -- calls and plans -------------------------------------------------------------------------------------


class _ClientDefault:
    def __repr__(self) -> str:
        return "CLIENT_DEFAULT"


CLIENT_DEFAULT: Any = _ClientDefault()
"""A call's timeout when it takes the client's."""


@dataclass(frozen=True)
class Call:
    """One RPC an operation's plan asks for: ``service`` (``"datasets"``, ``"training"``, ``"models"``,
    ``"inference"``), the method name, the request (an iterator of requests for an upload), and whether it is
    safe to repeat (``retry``) when it fails with a retryable code."""

    service: str
    method: str
    request: Any
    retry: bool = True
    timeout: float | None = CLIENT_DEFAULT


@dataclass(frozen=True)
class Blocking:
    """Local work a plan needs done (zipping, hashing files): inline in the blocking client, in a worker
    thread in the asyncio one."""

    function: Callable[[], Any]


Plan = Generator[Call | Blocking, Any, T]
"""An operation's body: yields what it needs, receives each answer, returns the result."""


def operation(plan: Callable[..., Plan[Any]]) -> Callable[..., Any]:
    """Make a plan a client method: the connection runs it (``Client``: returns the result; ``AsyncClient``:
    returns an awaitable). ``method.plan`` is the plan itself, for operations built from others."""

    @functools.wraps(plan)
    def method(self: BaseConnection, *args: Any, **kwargs: Any) -> Any:
        return self._run(plan(self, *args, **kwargs))

    method.plan = plan  # type: ignore[attr-defined]
    return method


def paged(service: str, method: str, request: Any, items: str) -> Plan[list[Any]]:
    """Every item of a paged List call; stops on a repeated token, so a buggy server cannot loop it."""
    out: list[Any] = []
    request.page.page_size = PAGE_SIZE
    token = ""
    while True:
        request.page.page_token = token
        response = yield Call(service, method, request)
        out.extend(getattr(response, items))
        if not response.next_page_token or response.next_page_token == token:
            return out
        token = response.next_page_token


# -- the channel -----------------------------------------------------------------------------------------


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


class BaseConnection:
    """Settings, metadata, credentials and channel options, shared by the blocking and the asyncio
    connection (see :class:`~fineserve_client.Client` for the arguments). Subclasses open the channel
    (:meth:`_open`) and run plans (:meth:`_run`)."""

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float | None = CLIENT_DEFAULT,
        metadata: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        channel_options: Sequence[tuple[str, Any]] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        tls: bool | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        retry: RetryPolicy | int | None = None,
        settings: Settings | None = None,
    ) -> None:
        given = dict(target=target, api_key=api_key, tls=tls, ca_file=ca_file, client_cert=client_cert,
                     client_key=client_key, server_name=server_name,
                     timeout=None if timeout is CLIENT_DEFAULT else float("inf") if timeout is None else timeout,
                     max_attempts=retry if isinstance(retry, int) else None)
        if settings is None:
            settings = Settings.from_env(**given)
        else:  # the caller's settings, then these arguments; the environment is not read
            settings = replace(settings, **vars(Settings.from_env({}, **given)) | {
                k: v for k, v in vars(settings).items() if given[k] is None})
        self.settings = settings
        self.target = settings.target
        self.timeout = settings.timeout
        self.retry = retry if isinstance(retry, RetryPolicy) else RetryPolicy(max_attempts=settings.max_attempts)
        self._metadata = _metadata(metadata)
        if settings.api_key is not None:
            key = settings.api_key.strip()
            if not key or not key.isprintable() or not key.isascii():
                raise ValueError("api_key must be a non-empty printable ASCII string")
            kept = tuple(m for m in self._metadata if m[0] != "authorization")
            self._metadata = (*kept, ("authorization", f"Bearer {key}"))
        s = settings
        if credentials is None and (s.tls or any(f is not None for f in (s.ca_file, s.client_cert, s.client_key))):
            credentials = tls_credentials(s.ca_file, s.client_cert, s.client_key)
        options = {
            "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
            "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        }
        if s.server_name:
            options["grpc.ssl_target_name_override"] = s.server_name
        options.update(dict(channel_options or ()))
        self.channel = self._open(s.target, credentials, list(options.items()))
        self._datasets = datasets_pb2_grpc.DatasetsStub(self.channel)
        self._training = training_pb2_grpc.TrainingStub(self.channel)
        self._models = models_pb2_grpc.ModelsStub(self.channel)
        self._inference = inference_pb2_grpc.InferenceStub(self.channel)

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, Any]]) -> Any:
        raise NotImplementedError

    def _run(self, plan: Plan[T]) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r})"

    def _prepare(self, call: Call) -> tuple[Callable[..., Any], float | None]:
        """The call's multi-callable and its deadline on the monotonic clock (``None``: none)."""
        rpc = getattr(getattr(self, "_" + call.service), call.method)
        timeout = self.timeout if call.timeout is CLIENT_DEFAULT else call.timeout
        return rpc, None if timeout is None else time.monotonic() + timeout

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _failed(plan: Plan[Any], error: grpc.RpcError) -> Any:
    """Raise the matching :class:`~fineserve_client.errors.FineserveError` inside the plan (so its clean-ups
    run) and return what the plan does next when it handles it."""
    mapped = from_rpc_error(error)
    mapped.__cause__ = error
    return plan.throw(mapped)


class Connection(BaseConnection):
    """The blocking connection: a ``grpc.Channel``; plans run with blocking calls."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, Any]]) -> grpc.Channel:
        if credentials is not None:
            return grpc.secure_channel(target, credentials, options=options)
        return grpc.insecure_channel(target, options=options)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, plan: Plan[T]) -> T:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Blocking):
                    try:
                        done = step.function()
                    except Exception as e:
                        step = plan.throw(e)
                    else:
                        step = plan.send(done)
                    continue
                try:
                    answer = self._send(step)
                except grpc.RpcError as e:
                    step = _failed(plan, e)
                else:
                    step = plan.send(answer)
        except StopIteration as stop:
            return stop.value

    def _send(self, call: Call) -> Any:
        """Make one call, repeating it as :attr:`retry` allows when ``call.retry``, inside one deadline."""
        rpc, deadline = self._prepare(call)
        attempt = 1
        while True:
            try:
                return rpc(call.request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as e:
                delay = self.retry.next_delay(e, attempt, deadline) if call.retry else None
                if delay is None:
                    raise
            time.sleep(delay)
            attempt += 1
