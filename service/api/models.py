"""Models servicer: the registry of fine-tuned models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

from control.registry import Registry
from control.store import Store
from fineserve.v1 import common_pb2, models_pb2, models_pb2_grpc, training_pb2
from fineserve_common.errors import InvalidArgument, NotFound
from service.errors import rpc
from service.ids import next_token, page_bounds
from service.tenancy import current_tenant, owned


def _check_ref(ref: common_pb2.ModelRef) -> None:
    if not ref.name:
        raise InvalidArgument("model.name is required")
    if ref.version < 0:
        raise InvalidArgument("model.version must be >= 0 (0 = latest)")


def _found(ref: common_pb2.ModelRef,
           found: tuple[models_pb2.Model, str] | None) -> tuple[models_pb2.Model, str]:
    return owned(found, f"model {ref.name}/{ref.version or 'latest'}")


def _of_tasks(found: tuple[models_pb2.Model, str], rpc_name: str,
              tasks: tuple[int, ...]) -> tuple[models_pb2.Model, str]:
    """found, unless its model is of a task that rpc_name cannot serve (INVALID_ARGUMENT)."""
    model = found[0]
    if model.task not in tasks:
        raise InvalidArgument(f"model {model.ref.name}/{model.ref.version} is a "
                              f"{training_pb2.Task.Name(model.task)} model; {rpc_name} needs "
                              + " or ".join(training_pb2.Task.Name(t) for t in tasks))
    return found


def resolve_model(store: Store, ref: common_pb2.ModelRef) -> tuple[models_pb2.Model, str]:
    """(model, directory) for a ModelRef of the calling tenant; version 0 is the latest.

    Another tenant's model is reported exactly like a model that does not exist.
    """
    _check_ref(ref)
    return _found(ref, store.get_model(ref.name, ref.version, tenant=current_tenant()))


async def resolve_model_for(store: Store, ref: common_pb2.ModelRef, rpc_name: str,
                            tasks: tuple[int, ...]) -> tuple[models_pb2.Model, str]:
    """resolve_model for an inference call, refusing (INVALID_ARGUMENT) a model of a task that rpc_name cannot
    serve. A lookup the store holds in memory is answered on the event loop; any other (a coordinator round
    trip) waits in a thread, so that the loop's other calls and Ray Serve's router keep moving meanwhile."""
    _check_ref(ref)
    tenant = current_tenant()
    found = store.cached_model(ref.name, ref.version, tenant=tenant)
    if found is None:
        found = await asyncio.to_thread(store.get_model, ref.name, ref.version, tenant=tenant)
    return _of_tasks(_found(ref, found), rpc_name, tasks)


class ModelsServicer(models_pb2_grpc.ModelsServicer):
    """loaded_replicas(serving id) counts the serving replicas that hold a model in memory."""

    def __init__(self, store: Store, registry: Registry,
                 loaded_replicas: Callable[[str], Awaitable[int]]) -> None:
        self._store = store
        self._registry = registry
        self._loaded_replicas = loaded_replicas

    @rpc
    async def ListModels(self, request: models_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> models_pb2.ListModelsResponse:
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        models = await asyncio.to_thread(self._store.list_models, request.name, offset, limit, tenant=current_tenant())
        return models_pb2.ListModelsResponse(models=models, next_page_token=next_token(offset, limit, len(models)))

    @rpc
    async def GetModel(self, request: models_pb2.GetModelRequest,
                       context: grpc.aio.ServicerContext) -> models_pb2.Model:
        model, path = await asyncio.to_thread(resolve_model, self._store, request.ref)
        model.loaded_replicas = await self._loaded_replicas(self._registry.serving_id(path))
        return model

    @rpc
    async def DeleteModel(self, request: models_pb2.DeleteModelRequest,
                          context: grpc.aio.ServicerContext) -> models_pb2.DeleteModelResponse:
        return await asyncio.to_thread(self._delete, request.ref)

    def _delete(self, ref: common_pb2.ModelRef) -> models_pb2.DeleteModelResponse:
        """Coordinator calls and file removal, so off the event loop."""
        if ref.version:
            resolve_model(self._store, ref)
        elif not ref.name:
            raise InvalidArgument("ref.name is required")
        versions = self._registry.delete(ref.name, ref.version, current_tenant())
        if not versions:
            raise NotFound(f"model {ref.name} not found")
        return models_pb2.DeleteModelResponse(
            deleted=[common_pb2.ModelRef(name=ref.name, version=v) for v in versions])
