"""One forward pass at a time per method on a replica, merging the batches that queued behind it.

Ray Serve's @serve.batch closes the next batch as soon as its wait ends, even while the previous batch is
still running, so under load several small batches line up behind a pass. Here the batches waiting when the
running pass ends go in together (up to max_images): the pass takes everything that arrived while the device
was busy, which is what dynamic batching is for, without a longer wait for a lone caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

Answer = TypeVar("Answer")  # one call's answer (fineserve_common.answers)


class Call(NamedTuple):
    """One caller's part of a pass: its model, its images (decoded: a tensor, or (tensor, size) pairs), its option,
    the index of images[0] in its request, and a flag its request sets when its caller is gone (cancelled, or
    past its deadline): a call still waiting when its pass starts is then left out of it."""

    model: Any
    images: Any
    option: Any
    offset: int
    gone: threading.Event | None = None


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
                task = asyncio.ensure_future(asyncio.to_thread(_live_only, work, merged))
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
            size = sum(len(c.images) for c in self._waiting[0][0])
            if group and images + size > self.max_images:
                break
            group.append(self._waiting.pop(0))
            images += size
        return group


def _live_only(work: Callable[[list[Call]], list[Answer]], calls: list[Call]) -> list[Answer | list[Any]]:
    """work() on the calls whose caller still waits; a gone caller's answer is an empty list nobody reads (Ray
    Serve's @serve.batch never cancels a batch it has formed, so its handler brings gone callers here)."""
    live = [i for i, c in enumerate(calls) if c.gone is None or not c.gone.is_set()]
    answers: list[Answer | list[Any]] = [[] for _ in calls]
    for i, answer in zip(live, work([calls[i] for i in live]) if live else [], strict=True):
        answers[i] = answer
    return answers


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
