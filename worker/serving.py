"""Ray Serve deployment that serves stored models: multiplexed by model id, batched across callers.

Model ids are "<tenant>/<name>/<version>", the model's directory relative to the model store root (the front
door resolves a caller's model within the caller's tenant first). A new version is servable the moment its
directory exists. A deleted model is dropped from every replica within REPORT_S (each replica watches the
directories of the models it holds), and a version number re-used after a delete is never answered by the
old weights: a loaded model remembers its directory's identity and is reloaded when that changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ray import serve

from fineserve_common.answers import (
    Heatmap,
    LabelScores,
    PerUser,
    Ratings,
    Recommended,
    RecommendQuery,
    Refused,
    Segmentation,
    TabularPrediction,
    TopClasses,
)
from fineserve_common.errors import InvalidArgument
from worker import interpretation
from worker.interpretation import LabelCut
from worker.pass_merging import Call, MergedPasses
from worker.serving_stats import REPORT_S, STATS_ACTOR, STATS_NAMESPACE

# Defaults of the batch decorators; each deployment sets its own in __init__ (service/config.py ServingConfig).
MAX_BATCH_SIZE = 32
BATCH_WAIT_S = 0.0
# Batches that may wait behind a running pass (worker/pass_merging.py merges them into the next one).
MAX_WAITING_BATCHES = 64
# Threads one tenant's calls may keep busy at once on a replica, decoding images or explaining them: half the
# machine's cores, so that the other half is left to the other tenants.
TENANT_THREADS = max(1, len(os.sched_getaffinity(0)) // 2)

R = TypeVar("R")


def _images_in(calls: list[Call]) -> int:
    return sum(len(c.images) for c in calls)


def _preprocess_each(model: Any, calls: list[list[bytes]]) -> list[Any]:
    """model.preprocess of each call's images, or its Refused (the first bad image by index in its call)."""
    from worker.engine import InvalidImage

    out: list[Any] = []
    for images in calls:
        try:
            out.append(model.preprocess(images))
        except InvalidImage as e:
            out.append(Refused.of(InvalidArgument(str(e))))  # "image N: why", as InvalidImage words it
    return out


def forward_calls(calls: list[Call], record: Callable[[int], None]) -> list[list[Any]]:
    """One forward pass per model over every caller's preprocessed images (record(images) of each); each
    call's rows answered by its option (image_answers): Classify's and ScoreLabels' calls share passes."""
    import torch

    answers: list[list[Any]] = [[] for _ in calls]
    by_model: dict[int, list[int]] = {}
    for i, (model, *_) in enumerate(calls):
        by_model.setdefault(id(model), []).append(i)
    for group in by_model.values():
        model = calls[group[0]][0]
        probs = model.predict_tensor(torch.cat([calls[i][1] for i in group]))
        record(len(probs))
        for i in group:
            part, probs = probs[: len(calls[i][1])], probs[len(calls[i][1]):]
            answers[i] = interpretation.image_answers(model, part, calls[i][2])
    return answers


def _identity(path: Path) -> tuple[int, int] | None:
    """What tells a model directory apart from a deleted one re-created at the same path."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class Held:
    """A loaded model as the multiplexer keeps it; the multiplexer calls __del__ when it evicts it (LRU)."""

    def __init__(self, model: Any, identity: tuple[int, int] | None, release: Callable[[], None]) -> None:
        self.model = model
        self.identity = identity
        self._release: Callable[[], None] | None = release

    def __del__(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


@serve.deployment(name="ModelServer", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=128)
class ModelServer:
    def __init__(self, models_root: str, max_models: int, max_image_pixels: int | None = None,
                 max_batch_size: int = MAX_BATCH_SIZE, batch_wait_s: float = BATCH_WAIT_S,
                 precision: str = "fp32") -> None:
        self._root = Path(models_root).resolve()
        self._max_models = max_models
        self._max_batch = max_batch_size
        self._precision = precision
        for batcher in (self._classify_batch, self._segment_batch):
            batcher.set_max_batch_size(max_batch_size)
            batcher.set_batch_wait_timeout_s(batch_wait_s)
        self._classify_passes: MergedPasses[list[Any]] = MergedPasses(max_batch_size)
        self._segment_passes: MergedPasses[list[Segmentation]] = MergedPasses(max_batch_size)
        from worker.engine.images import set_pixel_limit
        from worker.engine.precision import resolve_device
        from worker.engine.vision.forward import start_device

        start_device(resolve_device("auto"))  # the device load_served_model picks
        set_pixel_limit(max_image_pixels)
        # What the metrics report: models in memory or being loaded, the most there ever were at once, and the
        # forward passes run since the last report (all under _stats_lock).
        self._held: set[str] = set()
        self._held_max = 0
        self._stats_lock = threading.Lock()
        self._passes: list[tuple[str, int]] = []  # (method, images) of forward passes not yet reported
        self._stats: Any = None  # the stats actor, looked up at the first report (False: there is none)
        self._replica = ""
        self._watcher: asyncio.Task[None] | None = None
        self._tenant_gates: dict[str, asyncio.Semaphore] = {}  # one per tenant seen (tenants are configured)
        # On every request's path: resolving walks the path one syscall per component (a refused id is not kept).
        self._dir = functools.lru_cache(maxsize=4096)(self._resolve)

        async def load(model_id: str) -> Held:
            return await asyncio.to_thread(self._load, model_id)

        # Wrapped here rather than decorated on the class so that the LRU size is a deployment argument.
        self._multiplexed = load
        self._get_model = serve.multiplexed(max_num_models_per_replica=max_models)(load)

    async def _tenant_thread(self, work: Callable[..., R], *args: Any) -> R:
        """work(*args) in a thread, at most TENANT_THREADS at once per tenant (the model id's first part) on
        this replica: one tenant's heavy inputs (large images to decode, Explain's overlays) queue behind each
        other rather than take every core, so another tenant's call still finds one."""
        tenant = serve.get_multiplexed_model_id().split("/", 1)[0]
        gate = self._tenant_gates.setdefault(tenant, asyncio.Semaphore(TENANT_THREADS))
        async with gate:
            return await asyncio.to_thread(work, *args)

    def _stats_actor(self) -> Any:
        """The stats actor, or None when deployed without the front door's (then the replica reports nothing)."""
        if self._stats is None:
            import ray

            self._replica = serve.get_replica_context().replica_id.unique_id
            try:
                self._stats = ray.get_actor(STATS_ACTOR, namespace=STATS_NAMESPACE)
            except ValueError:
                self._stats = False
        return self._stats or None

    def _report(self) -> None:
        if stats := self._stats_actor():
            with self._stats_lock:
                models, held_max = list(self._held), self._held_max
                passes, self._passes = self._passes, []
            stats.replica.remote(self._replica, models, held_max, self._max_models)
            if passes:
                stats.forward_passes.remote(passes)

    def _record_pass(self, method: str, images: int) -> None:
        """Kept until the next report (every REPORT_S)."""
        with self._stats_lock:
            self._passes.append((method, images))

    def _resolve(self, model_id: str) -> Path:
        path = (self._root / model_id).resolve()
        if self._root not in path.parents:
            raise ValueError(f"model id {model_id!r} is outside the model store")
        return path

    def _load(self, model_id: str) -> Held:
        from worker.engine import load_served_model, prepare_for_serving

        path = self._dir(model_id)
        identity = _identity(path)
        with self._stats_lock:
            self._held.add(model_id)
            self._held_max = max(self._held_max, len(self._held))
        self._report()
        try:
            model = prepare_for_serving(load_served_model(path), self._precision, self._max_batch)
        except BaseException:
            self._release(model_id)
            raise
        return Held(model, identity, lambda: self._release(model_id))

    def _release(self, model_id: str) -> None:
        with self._stats_lock:
            self._held.discard(model_id)
        self._report()

    async def _model(self) -> Any:
        """The request's model, loaded on demand; reloaded when its directory was replaced since."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        model_id = serve.get_multiplexed_model_id()
        held = await self._get_model(model_id)
        if held.identity != _identity(self._dir(model_id)):
            await self._evict(model_id)
            held = await self._get_model(model_id)
        return held.model

    async def _evict(self, model_id: str) -> None:
        # Ray Serve's multiplexer has no public unload; its LRU dict and lock are the one place to drop a model.
        wrapper = getattr(self._multiplexed, "__serve_multiplex_wrapper", None)
        if wrapper is None:
            return
        async with wrapper._model_cache_lock:
            held = wrapper.models.pop(model_id, None)
            wrapper._push_multiplexed_replica_info = True  # the router stops sending this model here
        if held is not None:
            held.__del__()

    async def _watch(self) -> None:
        """Every REPORT_S: drop models whose directory was deleted or replaced; tell the stats actor we live and
        what we ran."""
        while True:
            await asyncio.sleep(REPORT_S)
            wrapper = getattr(self._multiplexed, "__serve_multiplex_wrapper", None)
            for model_id, held in list(wrapper.models.items()) if wrapper else []:
                with contextlib.suppress(ValueError):
                    if held.identity != _identity(self._dir(model_id)):
                        await self._evict(model_id)
            self._report()

    async def _in_batches(self, batcher: Callable[[Call], Awaitable[list[R] | Refused]], model: Any,
                          images: Any, option: Any) -> list[R] | Refused:
        """A request's images (bytes, or their tensor) through the batcher in parts of at most max_batch_size,
        answers re-joined in order; the first bad image (by index in the request) fails the request."""
        n, gone = self._max_batch, threading.Event()
        try:
            parts = await asyncio.gather(*(batcher(Call(model, images[i:i + n], option, i, gone))
                                           for i in range(0, max(len(images), 1), n)))
        except asyncio.CancelledError:  # the front door cancelled the request: its parts leave the passes
            gone.set()
            raise
        results: list[R] = []
        for part in parts:
            if isinstance(part, Refused):
                return part
            results.extend(part)
        return results

    async def predict_text(self, texts: list[str], top_k: int) -> list[TopClasses] | Refused:
        """(label, probability) pairs per text, most probable first (top_k of them; 0 = all)."""
        model = await self._model()
        try:
            return [TopClasses(top) for top in await asyncio.to_thread(model.predict, texts, top_k)]
        except ValueError as e:
            return Refused.of(InvalidArgument(str(e)))

    async def classify(self, images: list[bytes], top_k: int) -> list[TopClasses] | Refused:
        """Top-k (label, probability) per image, or a Refused for input the model cannot take."""
        return (await self.classify_calls([(images, top_k)]))[0]

    async def classify_calls(self, calls: list[tuple[list[bytes], int]]) -> list[list[TopClasses] | Refused]:
        """classify of several callers' calls (merged by the front door: service/call_merging.py), each
        answered apart: a bad image refuses its own call only."""
        return await self._image_calls(await self._model(), calls)

    async def score_labels_calls(self, calls: list[tuple[list[bytes], float | None]]
                                 ) -> list[list[LabelScores] | Refused]:
        """Multi-label scores of several callers' ScoreLabels calls (merged by the front door, each with its
        threshold), through Classify's decoding and forward passes."""
        model = await self._model()
        if refused := interpretation.not_multi_label(model):
            return [refused] * len(calls)
        return await self._image_calls(model, [(images, LabelCut(threshold)) for images, threshold in calls])

    async def _image_calls(self, model: Any, calls: list[tuple[list[bytes], Any]]) -> list[Any]:
        """Each call's answers (image_answers of its option), or its Refused. The images are decoded here, in
        one thread of the tenant's for the request, apart from other requests': the shared forward pass gets
        tensors, so a small call that joins it never waits for another caller's large images to decode."""
        batches = await self._tenant_thread(_preprocess_each, model, [images for images, _ in calls])
        answers = await asyncio.gather(*(
            self._in_batches(self._classify_batch, model, batch, option)
            for batch, (_, option) in zip(batches, calls, strict=True) if not isinstance(batch, Refused)))
        done = iter(answers)
        return [batch if isinstance(batch, Refused) else next(done) for batch in batches]

    async def explain(self, images: list[bytes], target: str) -> list[Heatmap] | Refused:
        """Grad-CAM heatmaps of a request's images (one forward and backward pass for them all)."""
        model = await self._model()
        return await self._tenant_thread(interpretation.explain, model, images, target)

    async def recommend(self, query: RecommendQuery) -> PerUser | Recommended | Ratings | Refused:
        """Collaborative filtering; one query is already a batch (users or pairs), so it is not batched."""
        from worker.embedding_serving import recommend

        return await asyncio.to_thread(recommend, await self._model(), query)

    async def predict_tabular(self, rows: list[dict[str, str]], top_k: int) -> list[TabularPrediction] | Refused:
        from worker.embedding_serving import predict_table

        return await asyncio.to_thread(predict_table, await self._model(), rows, top_k)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S, batch_size_fn=_images_in,
                 max_concurrent_batches=MAX_WAITING_BATCHES)
    async def _classify_batch(self, calls: list[Call]) -> list[list[Any]]:
        return await self._classify_passes.run(calls, self._classify_calls)

    def _classify_calls(self, calls: list[Call]) -> list[list[Any]]:
        return forward_calls(calls, lambda images: self._record_pass("classify", images))

    async def segment(self, images: list[bytes], probabilities: bool) -> list[Segmentation] | Refused:
        """A segmentation per image (see segment_calls), or a Refused for input the model cannot take. Decoded
        here, apart from other callers', as classify's images are."""
        from worker.engine import InvalidImage

        model = await self._model()
        try:
            batch, sizes = await self._tenant_thread(model.preprocess, images)
        except InvalidImage as e:
            return Refused.of(InvalidArgument(str(e)))  # "image N: why", as InvalidImage words it
        return await self._in_batches(self._segment_batch, model, list(zip(batch, sizes, strict=True)),
                                      probabilities)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S, batch_size_fn=_images_in,
                 max_concurrent_batches=MAX_WAITING_BATCHES)
    async def _segment_batch(self, calls: list[Call]) -> list[list[Segmentation]]:
        return await self._segment_passes.run(calls, self._segment_calls)

    def _segment_calls(self, calls: list[Call]) -> list[list[Segmentation]]:
        from worker.segment_serving import segment_calls

        return segment_calls(calls, lambda images: self._record_pass("segment", images))
