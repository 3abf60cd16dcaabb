"""The fineserve SDK: :class:`Client` wraps the ``fineserve.v1`` gRPC services in plain Python calls, one
module per area (``datasets``, ``training``, ``models``, ``inference``) over one ``connection``."""

from __future__ import annotations

from .arguments import parse_base, parse_model_ref
from .connection import tls_credentials
from .datasets import DatasetsMixin
from .inference import InferenceMixin
from .interpretation import Heatmap, LabelScores
from .models import ModelsMixin
from .results import Classification
from .training import TrainingMixin

__all__ = ["Classification", "Client", "Heatmap", "LabelScores", "parse_base", "parse_model_ref", "tls_credentials"]


class Client(DatasetsMixin, TrainingMixin, ModelsMixin, InferenceMixin):
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
