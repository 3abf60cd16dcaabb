"""The models area of :class:`~fineserve_client.Client`: the versions in the model store."""

from __future__ import annotations

from fineserve.v1 import common_pb2, models_pb2

from .arguments import model_ref
from .connection import Connection, rpc_method


class ModelsMixin(Connection):
    @rpc_method
    def list_models(self, name: str | None = None) -> list[models_pb2.Model]:
        """Every stored model version (all pages; by name, then version descending), optionally of one
        ``name``."""
        return self._pages(self._models.ListModels, models_pb2.ListModelsRequest(name=name or ""), "models")

    @rpc_method
    def get_model(self, name: str, version: int = 0) -> models_pb2.Model:
        """One model version; ``version`` 0 (or a bare name) is the latest. ``"name/3"`` also works."""
        return self._call(self._models.GetModel, models_pb2.GetModelRequest(ref=model_ref(name, version)))

    @rpc_method
    def delete_model(self, name: str, version: int = 0) -> list[common_pb2.ModelRef]:
        """Delete one version, or every version of ``name`` with version 0; returns what was deleted."""
        request = models_pb2.DeleteModelRequest(ref=model_ref(name, version))
        return list(self._call(self._models.DeleteModel, request).deleted)
