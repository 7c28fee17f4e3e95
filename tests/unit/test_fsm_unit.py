"""The conversation state within one update (handlers/fsm_storage.py): read once, written once at
the end or with the handler's own transaction, not at all when nothing changed."""

from __future__ import annotations

import asyncio
from datetime import date
from zoneinfo import ZoneInfo

from aiogram.fsm.storage.base import StorageKey

from bot.clock import FixedClock
from bot.db.repositories import Database
from bot.services.onboarding_starts import OnboardingStarts
from handlers.fsm_storage import SqlStorage
from tests.transactions import TransactionCounter

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)
DAY = date(2026, 11, 23)  # the tests' clock: 12:00 in Moscow


async def test_one_read_and_one_write_per_update(db: Database) -> None:
    storage = SqlStorage(db)
    counter = TransactionCounter(db.engine)
    try:
        async with storage.unit(KEY):
            assert await storage.get_state(KEY) is None
            assert await storage.get_data(KEY) == {}
            await storage.set_state(KEY, "Onboarding:consent")
            await storage.set_data(KEY, {"source": "instagram"})
            assert (
                await storage.get_state(KEY) == "Onboarding:consent"
            )  # its own writes, seen at once
            assert await storage.get_data(KEY) == {"source": "instagram"}
            assert sum(counter.writes.values()) == 0  # not yet
        writes, reads = counter.take()
        assert sum(writes.values()) == 1 and sum(reads.values()) == 1
        assert (
            await storage.get_state(KEY) == "Onboarding:consent"
        )  # outside an update: straight to the database
        assert await storage.get_data(KEY) == {"source": "instagram"}
        counter.reset()
        async with storage.unit(KEY):  # set to what it is: nothing to write
            await storage.set_state(KEY, "Onboarding:consent")
            await storage.set_data(KEY, {"source": "instagram"})
        assert sum(counter.writes.values()) == 0
        async with storage.unit(KEY):
            await storage.set_state(KEY, None)
            await storage.set_data(KEY, {})
        assert await storage.count() == 0  # cleared: no row
        counter.reset()
        async with storage.unit(KEY):  # a clear of a chat without state writes nothing
            await storage.set_state(KEY, None)
            await storage.set_data(KEY, {})
        assert sum(counter.writes.values()) == 0
    finally:
        counter.close()


async def test_the_state_rides_with_the_handlers_transaction(db: Database) -> None:
    storage = SqlStorage(db)
    counter = TransactionCounter(db.engine)
    try:
        async with storage.unit(KEY):
            await storage.set_state(KEY, "Survey:comment")
            async with db.transaction() as repos:  # the handler's own write
                await repos.fsm.count()
        assert sum(counter.writes.values()) == 1
        assert await storage.get_state(KEY) == "Survey:comment"
    finally:
        counter.close()


async def test_many_updates_state_in_a_few_transactions(db: Database) -> None:
    storage = SqlStorage(db)
    counter = TransactionCounter(db.engine)
    keys = [StorageKey(bot_id=1, chat_id=n, user_id=n) for n in range(1, 51)]

    async def update(key: StorageKey) -> None:
        async with storage.unit(key):
            await storage.set_state(key, "Onboarding:consent")

    try:
        await asyncio.gather(*(update(key) for key in keys))
        assert sum(counter.writes.values()) < len(keys) // 2  # a group commit, not 50 turns
        assert await storage.count() == len(keys)
    finally:
        counter.close()


async def test_a_start_counted_goes_with_the_state(db: Database, clock: FixedClock) -> None:
    """A newcomer's start counted in an update (`LATER`) is written by the transaction of its
    state: 50 newcomers at once, a few transactions for their states and counts together; a
    count with the handler's own transaction rides it; after the update, it goes at once."""
    storage = SqlStorage(db)
    starts = OnboardingStarts(db, clock, ZoneInfo("Europe/Moscow"))
    counter = TransactionCounter(db.engine)
    keys = [StorageKey(bot_id=1, chat_id=n, user_id=n) for n in range(1, 51)]

    async def update(key: StorageKey) -> None:
        async with storage.unit(key):
            await storage.set_state(key, "Onboarding:consent")
            await starts.count("insta")
            async with db.reading() as repos:  # not yet: left to the state's transaction
                assert await repos.onboarding_starts.between(DAY, DAY) < len(keys)

    async def counted() -> int:
        async with db.reading() as repos:
            return await repos.onboarding_starts.between(DAY, DAY)

    try:
        await asyncio.gather(*(update(key) for key in keys))
        assert sum(counter.writes.values()) < len(keys) // 2
        assert await counted() == len(keys) and await storage.count() == len(keys)
        counter.reset()
        async with storage.unit(KEY):  # only a count, the state unchanged: one write
            await starts.count(None)
        assert sum(counter.writes.values()) == 1 and await counted() == len(keys) + 1
        counter.reset()
        async with storage.unit(KEY):
            await starts.count(None)
            async with db.transaction() as repos:  # the handler's own write carries it
                await repos.fsm.count()
        assert sum(counter.writes.values()) == 1 and await counted() == len(keys) + 2
        await starts.count(None)  # outside an update: at once
        assert await counted() == len(keys) + 3
    finally:
        counter.close()
