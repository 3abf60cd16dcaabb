"""MergedPasses: batches that queue behind a running pass go into the next pass together, answers in order."""

from __future__ import annotations

import asyncio
import threading

from worker.pass_merging import Call, MergedPasses


def _calls(tag: str, *sizes: int, gone: threading.Event | None = None) -> list[Call]:
    return [Call(f"{tag}{i}", [b"x"] * n, None, 0, gone) for i, n in enumerate(sizes)]


class Work:
    """Records each pass's calls; the first pass blocks until released, so others queue behind it."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, calls: list) -> list[dict]:
        if not self.passes:
            self.release.wait(10)
        self.passes.append([c[0] for c in calls])
        if any(c[0].startswith("bad") for c in calls):
            raise RuntimeError("boom")
        return [{"results": c[0]} for c in calls]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_batches_waiting_behind_a_pass_are_merged_up_to_the_cap() -> None:
    async def scenario() -> tuple[list, Work]:
        passes, work = MergedPasses(max_images=4), Work()
        first = asyncio.ensure_future(passes.run(_calls("a", 1), work))
        await _settle()
        waiting = [asyncio.ensure_future(passes.run(_calls(t, 1, 1), work)) for t in ("b", "c", "d")]
        await _settle()
        work.release.set()
        return await asyncio.gather(first, *waiting), work

    answers, work = asyncio.run(scenario())
    assert work.passes == [["a0"], ["b0", "b1", "c0", "c1"], ["d0", "d1"]]
    assert answers == [[{"results": "a0"}], [{"results": "b0"}, {"results": "b1"}],
                       [{"results": "c0"}, {"results": "c1"}], [{"results": "d0"}, {"results": "d1"}]]


def test_a_failing_pass_fails_its_batches_only_and_a_cancelled_caller_strands_nobody() -> None:
    async def scenario() -> tuple[list, Work]:
        passes, work = MergedPasses(max_images=2), Work()
        first = asyncio.ensure_future(passes.run(_calls("a", 1), work))
        await _settle()
        bad = asyncio.ensure_future(passes.run(_calls("bad", 2), work))
        good = asyncio.ensure_future(passes.run(_calls("g", 1), work))
        await _settle()
        first.cancel()  # its pass goes on in its thread; the batches behind it must still be answered
        work.release.set()
        return await asyncio.gather(first, bad, good, return_exceptions=True), work

    (first, bad, good), work = asyncio.run(scenario())
    assert isinstance(first, asyncio.CancelledError)
    assert isinstance(bad, RuntimeError) and good == [{"results": "g0"}]
    assert work.passes == [["a0"], ["bad0"], ["g0"]]


def test_one_batch_larger_than_the_cap_still_runs() -> None:
    work = Work()
    work.release.set()
    assert asyncio.run(MergedPasses(max_images=1).run(_calls("a", 3), work)) == [{"results": "a0"}]


def test_a_call_whose_caller_is_gone_is_left_out_of_the_next_pass() -> None:
    """Ray Serve never cancels a batch it has formed: a caller cancelled (its deadline passed) while its batch
    waits behind a running pass must not cost the device its images."""
    async def scenario() -> tuple[list, Work]:
        passes, work, gone = MergedPasses(max_images=8), Work(), threading.Event()
        first = asyncio.ensure_future(passes.run(_calls("a", 1), work))
        await _settle()
        late = asyncio.ensure_future(passes.run(_calls("late", 1, gone=gone), work))
        kept = asyncio.ensure_future(passes.run(_calls("k", 1, gone=threading.Event()), work))
        await _settle()
        gone.set()  # what the replica's request does when the front door cancels it
        work.release.set()
        return await asyncio.gather(first, late, kept), work

    (_, late, kept), work = asyncio.run(scenario())
    assert work.passes == [["a0"], ["k0"]]
    assert kept == [{"results": "k0"}] and late == [[]]
