"""The front door's one server interceptor: authentication, the caller's tenant, enum checks, the audit log.

Every fineserve method's handler is wrapped so that, inside the RPC, it
1. resolves `authorization: Bearer <key>` to a tenant (UNAUTHENTICATED otherwise; open mode: "default"),
2. refuses enum fields set to values this server does not know (INVALID_ARGUMENT naming the field), so no
   servicer has to guard `Enum.Name(value)` against proto3's open enums,
3. sets the tenant context variable (service/tenancy.py) for the servicer,
4. writes the audit line of mutating calls (service/audit.py) with the final status code: a call the caller
   abandoned (hung up, or let its deadline pass) ends CANCELLED or DEADLINE_EXCEEDED, whatever the servicer was
   about to answer; a passed deadline is logged as one INFO line, any method.
Health checking and reflection are left alone: probes and tools need no key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from fineserve_common.errors import FineserveError, InvalidArgument
from service import audit
from service.auth import Identity, KeyStore
from service.errors import deadline_passed, status_code
from service.ids import check_request_ids
from service.tenancy import reset_tenant, set_tenant

log = logging.getLogger(__name__)

# What a handler sees when its caller is gone: gRPC cancels its task, or fails the answer it tries to send
# (grpc.aio.InternalError) to a call that has already ended.
CALLER_GONE = (asyncio.CancelledError, grpc.aio.InternalError)

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")


def unknown_enum(message: Message, prefix: str = "") -> str | None:
    """'field.path=value' of the first enum field holding a value its enum does not define, else None."""
    for fd, value in message.ListFields():
        name = f"{prefix}{fd.name}"
        if fd.type == fd.TYPE_ENUM:
            known = fd.enum_type.values_by_number
            for v in (value if fd.is_repeated else [value]):
                if v not in known:
                    return f"{name}={v}"
        elif fd.type == fd.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry:
            for i, sub in enumerate(value if fd.is_repeated else [value]):
                found = unknown_enum(sub, f"{name}[{i}]." if fd.is_repeated else f"{name}.")
                if found:
                    return found
    return None


def _check_enums(message: Any) -> None:
    if isinstance(message, Message) and (bad := unknown_enum(message)):
        field, _, value = bad.rpartition("=")
        raise InvalidArgument(f"{field} has an unknown enum value {value}")
    if isinstance(message, Message):
        check_request_ids(message)


def _code_name(context: grpc.aio.ServicerContext, default: str) -> str:
    code = context.code()
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code.name
    try:
        return next(c.name for c in grpc.StatusCode if c.value[0] == int(code))
    except (StopIteration, TypeError, ValueError):
        return str(code)


class _Call:
    """Per-RPC bookkeeping shared by the four handler shapes."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.context = context
        self.started = time.monotonic()
        self.identity: Identity | None = None
        self.request: Any = None
        self.peer = context.peer() or ""  # read now: gRPC forgets it once the call has ended

    def caller_gone(self) -> None:
        """Finish a call that ended before it was answered: its deadline passed, its caller hung up, or the server
        stopped (gRPC's own `cancelled()` says False in each case, so the deadline is what tells them apart)."""
        if deadline_passed(self.context):
            self.finish("DEADLINE_EXCEEDED", message="the caller's deadline passed")
        else:
            self.finish("CANCELLED", message="cancelled before it was answered (the caller hung up or the server "
                                             "is stopping)")

    def finish(self, code: str, response: Any = None, message: str | None = None) -> None:
        tenant = self.identity.tenant if self.identity else None
        if code == "DEADLINE_EXCEEDED":  # the caller's choice, not a fault: one line, no traceback
            log.info("%s: the caller's deadline passed after %.0f ms (tenant %s)", self.method,
                     (time.monotonic() - self.started) * 1000, tenant)
        if self.method not in audit.MUTATING:
            return
        try:
            fields = audit.target_of(self.method, self.request, response)
        except Exception:  # never let the audit trail fail a call
            fields = {}
        if message is None:
            message = self.context.details() or ""
        audit.record(method=self.method, tenant=tenant, key_id=self.identity.key_id if self.identity else "",
                     peer=self.peer, code=code, message=message, started=self.started, fields=fields)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        authorization = None
        for item in details.invocation_metadata or ():
            if item[0] == "authorization":
                authorization = item[1]
                break
        return self._wrap(handler, method, authorization)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str, authorization: str | None) -> grpc.RpcMethodHandler:
        keys = self._keys

        async def refuse(call: _Call, e: FineserveError) -> None:
            code = status_code(e)
            call.context.set_code(code)
            call.context.set_details(e.message)
            call.finish(code.name)
            await call.context.abort(code, e.message)

        async def admit(call: _Call, request: Any = None) -> object | None:
            """The tenant token of an authenticated call whose enums are known; None once it is refused."""
            call.request = request
            try:
                call.identity = keys.authenticate(authorization)
                _check_enums(request)
            except FineserveError as e:
                await refuse(call, e)
                return None
            return set_tenant(call.identity.tenant)

        async def run(call: _Call, work: Callable[[], Awaitable[Any]]) -> Any:
            try:
                response = await work()
            except grpc.aio.AbortError:
                call.finish(_code_name(call.context, "UNKNOWN"))
                raise
            except CALLER_GONE:
                call.caller_gone()
                raise
            except BaseException:
                call.finish(_code_name(call.context, "UNKNOWN"))
                raise
            call.finish(_code_name(call.context, "OK"), response)
            return response

        async def checked_stream(call: _Call, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            first = True
            async for message in requests:
                _check_enums(message)
                if first and isinstance(message, Message) and message.WhichOneof("part") == "header":
                    call.request = message.header
                first = False
                yield message

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call(method, context)
            if (token := await admit(call, request)) is None:
                return None
            try:
                return await run(call, lambda: handler.unary_unary(request, context))
            finally:
                reset_tenant(token)

        async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            call = _Call(method, context)
            if (token := await admit(call)) is None:
                return None

            async def work() -> Any:
                try:
                    return await handler.stream_unary(checked_stream(call, requests), context)
                except FineserveError as e:
                    await refuse(call, e)

            try:
                return await run(call, work)
            finally:
                reset_tenant(token)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(method, context)
            if (token := await admit(call, request)) is None:
                return
            try:
                async for item in handler.unary_stream(request, context):
                    yield item
                call.finish(_code_name(context, "OK"))
            except grpc.aio.AbortError:
                call.finish(_code_name(context, "UNKNOWN"))
                raise
            except CALLER_GONE:
                call.caller_gone()
                raise
            finally:
                reset_tenant(token)

        async def stream_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(method, context)
            if (token := await admit(call)) is None:
                return
            try:
                async for item in handler.stream_stream(checked_stream(call, requests), context):
                    yield item
                call.finish(_code_name(context, "OK"))
            except CALLER_GONE:
                call.caller_gone()
                raise
            finally:
                reset_tenant(token)

        kw = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(stream_stream, **kw)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(stream_unary, **kw)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(unary_stream, **kw)
        return grpc.unary_unary_rpc_method_handler(unary_unary, **kw)
