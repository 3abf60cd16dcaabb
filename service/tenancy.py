"""Who is calling: the tenant of the current RPC, set by the auth interceptor and read by the servicers.

One mechanism only: a context variable that service/interceptors.py sets inside each RPC's handler before the
servicer method runs. It has no default, so code that reads it outside an authenticated RPC fails loudly
instead of silently acting for some tenant. Background work (the job manager, a re-queued job) never reads it:
it takes the tenant stored with the job.
"""

from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar
from typing import TypeVar

from fineserve_common.errors import NotFound

# Tenant names end up in directory names (models/<tenant>/<name>/<version>): same alphabet as model names.
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")

T = TypeVar("T")

_TENANT: ContextVar[str] = ContextVar("fineserve_tenant")


def current_tenant() -> str:
    """The calling tenant; RuntimeError outside an RPC that went through the auth interceptor."""
    try:
        return _TENANT.get()
    except LookupError:
        raise RuntimeError("no tenant in this context: the call did not pass the auth interceptor") from None


def set_tenant(tenant: str) -> object:
    """Set the tenant for the rest of this RPC; returns a token for reset_tenant."""
    return _TENANT.set(tenant)


def reset_tenant(token: object) -> None:
    # ValueError: an async generator resumed in another context; that context ends with its RPC anyway.
    with contextlib.suppress(ValueError):
        _TENANT.reset(token)  # type: ignore[arg-type]


def owned(found: T | None, what: str) -> T:
    """found, the caller's own; NOT_FOUND naming what otherwise, so another tenant's id is reported exactly like
    an unknown one."""
    if found is None:
        raise NotFound(f"{what} not found")
    return found
