"""The fineserve SDK: :class:`Client` wraps the ``fineserve.v1`` gRPC services in plain Python calls, one
module per area (``datasets``, ``training``, ``models``, ``inference``) over one ``connection``; ``aio.py``
puts the same areas over a ``grpc.aio`` channel (:class:`~fineserve_client.AsyncClient`)."""

from __future__ import annotations

from .arguments import parse_base, parse_model_ref
from .connection import tls_credentials
from .datasets import DatasetsArea
from .following import Following
from .inference import InferenceArea
from .interpretation import Heatmap, LabelScores
from .models import ModelsArea
from .results import Classification
from .training import TrainingArea

__all__ = ["Classification", "Client", "Heatmap", "LabelScores", "parse_base", "parse_model_ref", "tls_credentials"]


class Client(DatasetsArea, TrainingArea, ModelsArea, InferenceArea, Following):
    """A connection to a fineserve server.

    Each setting comes from its argument, else from its ``FINESERVE_*`` environment variable, else its default
    (:class:`~fineserve_client.connection.Settings`): ``target`` (``$FINESERVE_TARGET``, ``localhost:50051``),
    ``api_key``, ``tls``, ``ca_file``, ``client_cert``, ``client_key``, ``server_name``, ``timeout`` and the
    retries' ``max_attempts``; ``settings=`` passes them all at once (the environment is then not read).

    Unary calls use ``timeout`` seconds as their deadline (``None``: no deadline; 60 by default); streaming
    calls (uploads, job watching) have no deadline unless one is passed to them. Calls that are safe to repeat
    (reads, inference, and creations that carry a ``request_id``) are retried after UNAVAILABLE or
    RESOURCE_EXHAUSTED with exponential backoff and full jitter inside that deadline: ``retry`` is the number
    of attempts or a :class:`~fineserve_client.retries.RetryPolicy` (``retry=1``: never).
    ``metadata`` (a mapping or pairs) is sent with every call. Every method raises
    :class:`~fineserve_client.errors.FineserveError` subclasses for gRPC errors (``Unauthenticated`` for a
    missing or unknown API key). Use as a context manager, or call :meth:`close`.

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
