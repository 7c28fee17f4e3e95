"""Counting the bot's transactions: write ones (`Database.transaction`, BEGIN IMMEDIATE on SQLite)
and read ones (`Database.reading`), by who opened them: the handling of an update, or a
background task (the outbox sender, the broadcast watcher, the planners). Used by the test that
pins the write transactions per customer message and by bench/transactions.py."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.engine import READING
from handlers.fsm_storage import _UNIT

UPDATE = "update"  # aiogram's handling of one update (Dispatcher._process_update / feed_update)


def origin() -> str:
    """Who is running now: "update" for a handler (and its middlewares, and the group commit of
    the updates' conversation state), else the background
    task's coroutine (`OutboxSender._send_one`, `App._watch_broadcasts`, …)."""
    if _UNIT.get() is not None:  # inside the handling of an update of a conversation
        return UPDATE
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return "outside"
    if task is None:
        return "outside"
    name = getattr(task.get_coro(), "__qualname__", task.get_name())
    # The updates' conversation state is written by one task for all of them (a group commit).
    return UPDATE if name.startswith(("Dispatcher.", "_GroupCommit.")) else name


class TransactionCounter:
    """Counts every transaction begun on `engine` from now on, until `close()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.writes: collections.Counter[str] = collections.Counter()
        self.reads: collections.Counter[str] = collections.Counter()
        event.listen(self.engine, "begin", self._begin)

    def _begin(self, connection: Any) -> None:
        counter = (
            self.reads if connection.get_execution_options().get(READING, False) else self.writes
        )
        counter[origin()] += 1

    def reset(self) -> None:
        self.writes.clear()
        self.reads.clear()

    def take(self) -> tuple[dict[str, int], dict[str, int]]:
        """The counts since the last take (writes, reads), and start again."""
        taken = dict(self.writes), dict(self.reads)
        self.reset()
        return taken

    def close(self) -> None:
        event.remove(self.engine, "begin", self._begin)
