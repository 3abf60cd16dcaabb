"""Ray Serve deployment that serves stored models: multiplexed by model id, batched across callers.

Model ids are "<tenant>/<name>/<version>", the model's directory relative to the model store root (the front
door resolves a caller's model within the caller's tenant first); versions are immutable, so a loaded model
never goes stale and a new version is servable the moment its directory exists.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ray import serve

from worker import interpretation
from worker.answers import invalid

MAX_BATCH_SIZE = 32
BATCH_WAIT_S = 0.01


@serve.deployment(name="ModelServer", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=128)
class ModelServer:
    def __init__(self, models_root: str, max_models: int, max_image_pixels: int | None = None) -> None:
        self._root = Path(models_root)
        if max_image_pixels:
            from PIL import Image

            # The engine refuses images past Image.MAX_IMAGE_PIXELS from their header, before decoding.
            Image.MAX_IMAGE_PIXELS = max_image_pixels

        async def load(model_id: str) -> Any:
            return await asyncio.to_thread(self._load, model_id)

        # Wrapped here rather than decorated on the class so that the LRU size is a deployment argument.
        self._get_model = serve.multiplexed(max_num_models_per_replica=max_models)(load)

    def _load(self, model_id: str) -> Any:
        from worker.engine import load_served_model

        root = self._root.resolve()
        path = (root / model_id).resolve()
        if root not in path.parents:
            raise ValueError(f"model id {model_id!r} is outside the model store")
        return load_served_model(path)

    async def predict_text(self, texts: list[str], top_k: int) -> dict[str, Any]:
        """(label, probability) pairs per text, most probable first (top_k of them; 0 = all)."""
        model = await self._get_model(serve.get_multiplexed_model_id())
        try:
            return {"results": await asyncio.to_thread(model.predict, texts, top_k)}
        except ValueError as e:
            return invalid(str(e))

    async def classify(self, images: list[bytes], top_k: int) -> dict[str, Any]:
        """Top-k (label, probability) per image, or {"error": {...}} for input the model cannot take."""
        model = await self._get_model(serve.get_multiplexed_model_id())
        return await self._classify_batch((model, images, top_k))

    async def score_labels(self, images: list[bytes], threshold: float | None) -> dict[str, Any]:
        """Multi-label scores of a request's images, computed as Classify computes probabilities."""
        model = await self._get_model(serve.get_multiplexed_model_id())
        return await asyncio.to_thread(interpretation.score_labels, model, images, threshold)

    async def explain(self, images: list[bytes], target: str) -> dict[str, Any]:
        """Grad-CAM heatmaps of a request's images (one forward and backward pass for them all)."""
        model = await self._get_model(serve.get_multiplexed_model_id())
        return await asyncio.to_thread(interpretation.explain, model, images, target)

    async def recommend(self, query: dict[str, Any]) -> dict[str, Any]:
        """Collaborative filtering; one query is already a batch (users or pairs), so it is answered inline."""
        from worker.embedding_serving import recommend

        return recommend(await self._get_model(serve.get_multiplexed_model_id()), query)

    async def predict_tabular(self, rows: list[dict[str, str]], top_k: int) -> dict[str, Any]:
        from worker.embedding_serving import predict_table

        return predict_table(await self._get_model(serve.get_multiplexed_model_id()), rows, top_k)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _classify_batch(self, calls: list[tuple[Any, list[bytes], int]]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._classify_calls, calls)

    @staticmethod
    def _classify_calls(calls: list[tuple[Any, list[bytes], int]]) -> list[dict[str, Any]]:
        """One forward pass per model over every caller's images; a bad image fails only its own call."""
        import torch

        from worker.engine import InvalidImage

        answers: list[dict[str, Any]] = [{} for _ in calls]
        by_model: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for i, (model, images, _) in enumerate(calls):
            try:
                batch = model.preprocess(images)
            except InvalidImage as e:
                answers[i] = invalid(f"image {e.index}: {e.reason}")
                continue
            by_model.setdefault(id(model), []).append((i, batch))
        for group in by_model.values():
            model = calls[group[0][0]][0]
            probs = model.predict_tensor(torch.cat([x for _, x in group]))
            for i, x in group:
                part, probs = probs[: len(x)], probs[len(x):]
                answers[i] = {"results": model.top_k(part, calls[i][2])}
        return answers

    async def segment(self, images: list[bytes], probabilities: bool) -> dict[str, Any]:
        """A segmentation per image (see segment_calls), or {"error": {...}} for input the model cannot take."""
        model = await self._get_model(serve.get_multiplexed_model_id())
        return await self._segment_batch((model, images, probabilities))

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _segment_batch(self, calls: list[tuple[Any, list[bytes], bool]]) -> list[dict[str, Any]]:
        from worker.segment_serving import segment_calls

        return await asyncio.to_thread(segment_calls, calls)
