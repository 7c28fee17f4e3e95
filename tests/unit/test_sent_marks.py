"""The outbox's group commit of delivered rows (`bot.outbox.sender.SentMarks`): what comes back
while one write is under way goes together in the next, each caller returns once its own rows
are written, and a caller stopped meanwhile does not stop the write (the message did go)."""

from __future__ import annotations

import asyncio

import pytest

from bot.outbox.sender import NotMarked, Sent, SentMarks


class SlowWriter:
    def __init__(self, failures: int = 0) -> None:
        self.writes: list[list[Sent]] = []
        self.release = asyncio.Event()
        self.failures = failures
        self.tries = 0

    async def __call__(self, sent: list[Sent]) -> None:
        await self.release.wait()
        self.tries += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database went away")
        self.writes.append(sent)


async def test_what_comes_back_during_a_write_goes_together_in_the_next() -> None:
    writer = SlowWriter()
    marks = SentMarks(writer)
    first = asyncio.create_task(marks.mark([(1, 101)]))
    await asyncio.sleep(0)  # the first write is under way
    rest = [asyncio.create_task(marks.mark([(n, 100 + n)])) for n in range(2, 6)]
    await asyncio.sleep(0)
    assert not first.done() and not any(task.done() for task in rest)
    writer.release.set()
    await asyncio.gather(first, *rest)
    assert writer.writes == [[(1, 101)], [(2, 102), (3, 103), (4, 104), (5, 105)]]


async def test_a_caller_stopped_meanwhile_still_has_its_rows_written() -> None:
    writer = SlowWriter()
    marks = SentMarks(writer)
    caller = asyncio.create_task(marks.mark([(7, 70)]))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    writer.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert writer.writes == [[(7, 70)]]


async def test_a_failed_write_fails_its_own_callers_only() -> None:
    """The first write keeps failing: its caller hears of it; a caller who came meanwhile is in
    the next write, which goes."""
    writer = SlowWriter(failures=1)
    marks = SentMarks(writer, retry_after=())
    failing = asyncio.create_task(marks.mark([(1, None)]))
    await asyncio.sleep(0)
    later = asyncio.create_task(marks.mark([(2, 202)]))
    writer.release.set()
    with pytest.raises(NotMarked):
        await failing
    await later
    assert writer.writes == [[(2, 202)]]


async def test_a_write_that_fails_once_is_tried_again() -> None:
    writer = SlowWriter(failures=2)
    writer.release.set()
    marks = SentMarks(writer, retry_after=(0, 0, 0))
    await marks.mark([(3, 303)])
    assert writer.tries == 3 and writer.writes == [[(3, 303)]]


async def test_a_write_stopped_midway_leaves_nobody_waiting() -> None:
    """The sender stops while a write is under way: its callers and those who came meanwhile
    hear that their rows were not marked, instead of waiting for good."""
    writer = SlowWriter()
    marks = SentMarks(writer)
    first = asyncio.create_task(marks.mark([(1, 101)]))
    await asyncio.sleep(0)
    second = asyncio.create_task(marks.mark([(2, 202)]))
    await asyncio.sleep(0)
    assert marks._writing is not None
    marks._writing.cancel()
    for caller in (first, second):
        with pytest.raises(NotMarked):
            await caller
