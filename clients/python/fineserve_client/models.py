"""The models area of :class:`~fineserve_client.Client` and :class:`~fineserve_client.AsyncClient`: the versions
in the model store."""

from __future__ import annotations

from fineserve.v1 import common_pb2, models_pb2

from .arguments import model_ref
from .connection import Call, Plan, operation, paged
from .records import Model


class ModelsArea:
    @operation
    def list_models(self, name: str | None = None) -> Plan[list[Model]]:
        """Every stored model version (all pages; by name, then version descending), optionally of one
        ``name``."""
        request = models_pb2.ListModelsRequest(name=name or "")
        return [Model.from_proto(m) for m in (yield from paged("models", "ListModels", request, "models"))]

    @operation
    def get_model(self, name: str, version: int = 0) -> Plan[Model]:
        """One model version; ``version`` 0 (or a bare name) is the latest. ``"name/3"`` also works."""
        return Model.from_proto((yield Call("models", "GetModel",
                                            models_pb2.GetModelRequest(ref=model_ref(name, version)))))

    @operation
    def delete_model(self, name: str, version: int = 0) -> Plan[list[common_pb2.ModelRef]]:
        """Delete one version, or every version of ``name`` with version 0; returns what was deleted (not
        retried: a repeat would answer NOT_FOUND)."""
        request = models_pb2.DeleteModelRequest(ref=model_ref(name, version))
        return list((yield Call("models", "DeleteModel", request, retry=False)).deleted)
