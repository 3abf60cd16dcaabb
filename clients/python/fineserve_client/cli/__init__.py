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
from ..connection import DEFAULT_TARGET, DEFAULT_TIMEOUT, Settings
from ..errors import FineserveError, JobFailed
from ..retries import RetryPolicy
from . import datasets, exits, inference, models, reach, report, training
from .output import Handler

__all__ = ["main"]

_AREAS = (datasets, training, models, inference, report)
"""Command modules, in the order their commands are listed in --help."""


_GLOBAL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--target", {"help": f"server address (default: $FINESERVE_TARGET or {DEFAULT_TARGET})"}),
    ("--json", {"action": "store_true", "help": "print JSON"}),
    ("--timeout", {"type": float, "help": "deadline of unary calls in seconds, retries included (default: "
                   f"$FINESERVE_TIMEOUT or {DEFAULT_TIMEOUT:g})"}),
    ("--max-attempts", {"type": int, "metavar": "N", "help": "tries of a call that failed for a passing reason "
                        f"(UNAVAILABLE, RESOURCE_EXHAUSTED) (default: $FINESERVE_MAX_ATTEMPTS or "
                        f"{RetryPolicy.max_attempts})"}),
    ("--api-key", {"metavar": "KEY", "help": "API key, sent as 'authorization: Bearer KEY' (default: "
                   "$FINESERVE_API_KEY)"}),
    ("--tls", {"action": "store_true",
               "help": "connect with TLS, trusting the system's CA roots (implied by --ca-file/--client-cert; "
               "default: $FINESERVE_TLS)"}),
    ("--ca-file", {"metavar": "PEM", "help": "CA bundle that signed the server's certificate; implies TLS "
                   "(default: $FINESERVE_CA_FILE)"}),
    ("--client-cert", {"metavar": "PEM",
                       "help": "client certificate chain for mutual TLS (default: $FINESERVE_CLIENT_CERT)"}),
    ("--client-key", {"metavar": "PEM", "help": "client private key for mutual TLS (default: $FINESERVE_CLIENT_KEY)"}),
    ("--server-name", {"metavar": "HOST",
                       "help": "host name to check the server's certificate against (default: "
                       "$FINESERVE_SERVER_NAME or the target's host)"}),
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
    parser = argparse.ArgumentParser(prog="fineserve", description=__doc__, parents=[common], epilog=exits.epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fineserve-client {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help, epilog=exits.epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=handler)
        return p

    for area in _AREAS:
        area.add_commands(command)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """Where and how to connect: the global options, then the SDK's FINESERVE_* variables (Settings.from_env is
    the one reader of them); a bad variable is a ValueError naming it."""
    given = {name: getattr(args, name, None) for name in ("target", "api_key", "ca_file", "client_cert",
                                                          "client_key", "server_name", "timeout", "max_attempts")}
    return Settings.from_env(tls=True if getattr(args, "tls", False) else None, **given)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the table in ``exits.py``, listed by ``--help``)."""
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as e:  # argparse's usage errors (2), --help and --version (0), as a return value
        return e.code if isinstance(e.code, int) else exits.USAGE.number
    args.json = getattr(args, "json", False)
    settings = Settings()
    try:
        settings = _settings(args)
        return _run(Client(settings=settings), args)
    except FineserveError as e:
        return _refusal(e, settings)
    except JobFailed as e:
        _error(str(e))
        return exits.JOB_FAILED.number
    except (ValueError, TypeError, FileNotFoundError) as e:
        _error(str(e))
        return exits.USAGE.number
    except OSError as e:
        _error(str(e))
        return exits.OTHER.number
    except KeyboardInterrupt:
        if not getattr(args, "interrupt_explained", False):
            _error("interrupted")
        if argv is None:  # the command itself: leave now (see _run), not in the channel's clean-up
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exits.INTERRUPTED.number)
        return exits.INTERRUPTED.number


def _run(client: Client, args: argparse.Namespace) -> int:
    """The command, then the channel closed; not after Ctrl-C: the interrupt may leave a call of the channel
    half-way (a stream not cancelled, a lock of gRPC's taken), and closing the channel, or collecting it, can then
    wait for ever (seen about one Ctrl-C in four while a progress bar draws); main leaves with os._exit instead."""
    try:
        status = args.func(client, args, sys.stdout)
    except KeyboardInterrupt:
        raise
    except BaseException:
        client.close()
        raise
    client.close()
    return status


def _error(text: str) -> None:
    sys.stderr.write(f"error: {text}\n")


def _refusal(e: FineserveError, s: Settings) -> int:
    """A failed call, in words: connection and TLS failures as their cause (not the transport's trace), the
    server's refusals as it worded them."""
    cause = None
    if e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        tls = s.tls or any(f is not None for f in (s.ca_file, s.client_cert, s.client_key))
        cause = reach.explain(e.message, s.target, tls, s.client_cert is not None)
    _error(f"{e.code.name}: {cause or e.message}")
    return exits.for_code(e.code)
