"""The fineserve command: upload data sets, run fine-tune jobs, inspect models, classify, score and segment
images, explain predictions with Grad-CAM heatmaps, recommend items and predict table rows."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc

from .. import __version__
from ..client import Client
from ..errors import FineserveError, JobFailed
from . import datasets, inference, models, training
from .output import Handler

__all__ = ["main"]

DEFAULT_TARGET = "localhost:50051"
_USAGE_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
_AREAS = (datasets, training, models, inference)
"""Command modules, in the order their commands are listed in --help."""


_GLOBAL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--target", {"help": f"server address (default: $FINESERVE_TARGET or {DEFAULT_TARGET})"}),
    ("--json", {"action": "store_true", "help": "print JSON"}),
    ("--timeout", {"type": float, "help": "deadline of unary calls in seconds (60)"}),
    ("--api-key", {"metavar": "KEY", "help": "API key, sent as 'authorization: Bearer KEY' (default: "
                   "$FINESERVE_API_KEY)"}),
    ("--tls", {"action": "store_true",
               "help": "connect with TLS, trusting the system's CA roots (implied by --ca-file/--client-cert)"}),
    ("--ca-file", {"metavar": "PEM", "help": "CA bundle that signed the server's certificate; implies TLS "
                   "(default: $FINESERVE_CA_FILE)"}),
    ("--client-cert", {"metavar": "PEM",
                       "help": "client certificate chain for mutual TLS (default: $FINESERVE_CLIENT_CERT)"}),
    ("--client-key", {"metavar": "PEM", "help": "client private key for mutual TLS (default: $FINESERVE_CLIENT_KEY)"}),
    ("--server-name", {"metavar": "HOST",
                       "help": "host name to check the server's certificate against (default: the target's host)"}),
)


def _connection_options() -> argparse.ArgumentParser:
    """Global options, accepted before or after the sub-command: SUPPRESS keeps a sub-command's parser from
    overwriting a value given before it."""
    common = argparse.ArgumentParser(add_help=False)
    for flag, options in _GLOBAL_OPTIONS:
        common.add_argument(flag, default=argparse.SUPPRESS, **options)
    return common


def _build_parser() -> argparse.ArgumentParser:
    common = _connection_options()
    parser = argparse.ArgumentParser(prog="fineserve", description=__doc__, parents=[common])
    parser.add_argument("--version", action="version", version=f"fineserve-client {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=handler)
        return p

    for area in _AREAS:
        area.add_commands(command)
    return parser


def _client(args: argparse.Namespace) -> Client:
    """A client for the global options, each falling back to its environment variable."""

    def option(name: str, env: str) -> Any:
        return getattr(args, name, None) or os.environ.get(env) or None

    return Client(
        option("target", "FINESERVE_TARGET") or DEFAULT_TARGET,
        timeout=getattr(args, "timeout", 60.0),
        api_key=option("api_key", "FINESERVE_API_KEY"),
        tls=bool(getattr(args, "tls", False)),
        ca_file=option("ca_file", "FINESERVE_CA_FILE"),
        client_cert=option("client_cert", "FINESERVE_CLIENT_CERT"),
        client_key=option("client_key", "FINESERVE_CLIENT_KEY"),
        server_name=getattr(args, "server_name", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for INVALID_ARGUMENT / NOT_FOUND and bad input, 1 for other
    errors)."""
    args = _build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    try:
        with _client(args) as client:
            return args.func(client, args, sys.stdout)
    except FineserveError as e:
        sys.stderr.write(f"error: {e.code.name}: {e.message}\n")
        return 2 if e.code in _USAGE_CODES else 1
    except JobFailed as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except (ValueError, TypeError, FileNotFoundError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
