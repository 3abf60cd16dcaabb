"""One forward pass at a time per method on a replica, merging the batches that queued behind it.

Ray Serve's @serve.batch closes the next batch as soon as its wait ends, even while the previous batch is
still running, so under load several small batches line up behind a pass. Here the batches waiting when the
running pass ends go in together (up to max_images): the pass takes everything that arrived while the device
was busy, which is what dynamic batching is for, without a longer wait for a lone caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

# (model, images (decoded: a tensor, or (tensor, size) pairs), option, index of images[0] in the request)
Call = tuple[Any, Any, Any, int]
Answer = TypeVar("Answer")  # one call's answer (fineserve_common.answers)


class MergedPasses(Generic[Answer]):
    def __init__(self, max_images: int) -> None:
        self.max_images = max_images
        self._lock = asyncio.Lock()
        self._waiting: list[tuple[list[Call], asyncio.Future[list[Answer]]]] = []

    async def run(self, calls: list[Call], work: Callable[[list[Call]], list[Answer]]) -> list[Answer]:
        """work(calls) -> one answer per call, run in a thread; this batch's answers, in order."""
        mine: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self._waiting.append((calls, mine))
        async with self._lock:
            while not mine.done():
                group = self._take()
                merged = [c for batch, _ in group for c in batch]
                task = asyncio.ensure_future(asyncio.to_thread(work, merged))
                # Resolved from the task itself: a cancelled caller must not strand the others in its group.
                task.add_done_callback(lambda t, group=group: _resolve(group, t))
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:  # this caller gave up: its pass still ends before the next starts
                    await asyncio.wait([task])
                    raise
                except Exception:  # each batch gets the error through its own future
                    pass
        return await mine

    def _take(self) -> list[tuple[list[Call], asyncio.Future[list[Answer]]]]:
        """The oldest waiting batches, as many as fit in max_images (always at least one)."""
        group, images = [], 0
        while self._waiting:
            size = sum(len(c[1]) for c in self._waiting[0][0])
            if group and images + size > self.max_images:
                break
            group.append(self._waiting.pop(0))
            images += size
        return group


def _resolve(group: list[tuple[list[Call], asyncio.Future[list[Answer]]]], task: asyncio.Future[list[Answer]]) -> None:
    error = task.exception() if not task.cancelled() else asyncio.CancelledError()
    answers = task.result() if error is None else []
    offset = 0
    for batch, future in group:
        part, offset = answers[offset:offset + len(batch)], offset + len(batch)
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(part)
