"""aiogram FSM storage in our own database.

aiogram ships memory, Redis and Mongo storages but none for SQL; by default carebot has no
Redis, and a conversation must survive a restart, so this small BaseStorage keeps state in
the `fsm_states` table (its SQL is `repos.fsm`, in the core). With REDIS_URL set, aiogram's own
RedisStorage is used instead.

Within one update (aiogram's event isolation lock, which `isolation()` wraps) the state of that
update's conversation is read once and kept: `get_state` at the start and the handler's
`get_data` cost one read, no write lock. What the handler sets is written once, at the end (still
inside the lock, so the next update of the same chat sees it), or carried by the handler's own
next write transaction (`bot.db.repositories.ALONG`); nothing is written when nothing changed
(`state.clear()` of a chat without state). A write the update's services left for later
(`bot.db.repositories.LATER`: a newcomer's start counted) goes in the same transaction. Outside an update (tests, other chats' state) every
call goes straight to the database, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)

from bot.db.repositories import ALONG, LATER, Database, Later, Repos
from bot.services.customers import CustomerView, customer_view


@dataclass
class _Unit:
    """One update's conversation: as stored, and as its handler left it."""

    key: str
    user_id: int | None = None  # whose conversation: their customer record is read with it
    known: bool = False  # read (or written) in this update
    customer: CustomerView | None = None  # read with the state (`prefetched_customer`)
    closed: bool = False  # the update is over: a task it started goes straight to the database
    stored: tuple[str | None, dict[str, Any]] = (None, {})
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    later: list[Later] = field(default_factory=list)  # writes left to the state's transaction

    def changed(self) -> bool:
        return self.known and (self.state, self.data) != self.stored

    def pending(self) -> bool:
        return self.changed() or bool(self.later)

    def saved(self) -> None:
        self.stored = (self.state, dict(self.data))


_UNIT: ContextVar[_Unit | None] = ContextVar("carebot_fsm_unit", default=None)


class SqlStorage(BaseStorage):
    def __init__(self, db: Database, key_builder: KeyBuilder | None = None) -> None:
        self.db = db
        self.key_builder = key_builder or DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
        self._writes = _GroupCommit(db)

    def isolation(self, inner: BaseEventIsolation) -> BaseEventIsolation:
        """`inner` (one lock per chat), each update inside it being one unit of this storage."""
        return _UnitIsolation(self, inner)

    def _unit(self, built: str) -> _Unit | None:
        unit = _UNIT.get()
        return unit if unit is not None and unit.key == built and not unit.closed else None

    async def _load(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        built = self.key_builder.build(key)
        unit = self._unit(built)
        if unit is not None and unit.known:
            return unit.state, dict(unit.data)
        async with self.db.reading(snapshot=False) as repos:
            if unit is None or unit.user_id is None:
                state, data = await repos.fsm.get(built)
            else:  # and the customer, which the update asks for next (CustomerMiddleware)
                state, data, customer = await repos.fsm.get_with_customer(built, unit.user_id)
                unit.customer = customer_view(customer) if customer else None
        if unit is not None:
            unit.known, unit.stored, unit.state, unit.data = (
                True,
                (state, dict(data)),
                state,
                dict(data),
            )
        return state, data

    async def _save(self, key: StorageKey, **values: Any) -> None:
        built = self.key_builder.build(key)
        unit = self._unit(built)
        if unit is None:
            async with self.db.transaction() as repos:
                await repos.fsm.save(built, **values)
            return
        if not unit.known:
            await self._load(key)
        unit.state = values.get("state", unit.state)
        unit.data = dict(values.get("data", unit.data))

    async def _along(self, repos: Repos) -> Callable[[], None] | None:
        """Written by the update's own write transaction, just before it commits."""
        unit = _UNIT.get()
        if unit is None or unit.closed or not unit.pending():
            return None
        later = list(unit.later)
        for write in later:
            await write(repos)
        changed, state, data = unit.changed(), unit.state, dict(unit.data)
        if changed:
            await repos.fsm.save(unit.key, state=state, data=data)

        def committed() -> None:
            del unit.later[: len(later)]
            if changed:
                unit.stored = (state, data)

        return committed

    @staticmethod
    def _later(write: Later) -> bool:
        """`LATER`: into the update's state transaction, while the update lasts."""
        unit = _UNIT.get()
        if unit is None or unit.closed:
            return False
        unit.later.append(write)
        return True

    @asynccontextmanager
    async def unit(self, key: StorageKey) -> AsyncIterator[None]:
        """One update of this conversation: its state read once, its changes written once."""
        unit = _Unit(self.key_builder.build(key), key.user_id)
        token, along, later = _UNIT.set(unit), ALONG.set(self._along), LATER.set(self._later)
        try:
            yield
        finally:
            LATER.reset(later)
            ALONG.reset(along)
            _UNIT.reset(token)
            unit.closed = True
            if unit.pending():
                state = (unit.state, dict(unit.data)) if unit.changed() else None
                await self._writes.save(unit.key, state, unit.later)
                unit.saved()
                unit.later = []

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._save(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        state, _ = await self._load(key)
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        await self._save(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        _, data = await self._load(key)
        return data

    async def close(self) -> None:
        """The engine is disposed by the app that owns it."""

    async def count(self) -> int:
        async with self.db.reading() as repos:
            return await repos.fsm.count()


def prefetched_customer(tg_user_id: int) -> CustomerView | None | EllipsisType:
    """The customer of this user as read with the state of the update's conversation (one
    statement for both), or `...` when it was not (another user's, or no such read)."""
    unit = _UNIT.get()
    if unit is None or unit.closed or not unit.known or unit.user_id != tg_user_id:
        return ...
    return unit.customer


class _GroupCommit:
    """The updates' own writes of their state, many in one transaction: those that come while one
    is being written wait and go together in the next (200 people tapping at once cost a few
    transactions, not 200 turns of the one SQLite writer). Each caller returns once its write
    is committed, so the next update of that chat sees it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._later: list[Later] = []
        self._told: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None

    async def save(
        self, key: str, state: tuple[str | None, dict[str, Any]] | None, later: list[Later]
    ) -> None:
        """This conversation's (state, data), None when unchanged, and the update's writes left
        for later (`LATER`), all in the next group transaction."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if state is not None:
            self._waiting[key] = state
        self._later.extend(later)
        self._told.append(done)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())
        await asyncio.shield(done)

    async def _write(self) -> None:
        while self._told:
            values, later, told = self._waiting, self._later, self._told
            self._waiting, self._later, self._told = {}, [], []
            try:
                async with self.db.transaction() as repos:
                    if values:
                        await repos.fsm.save_many(values)
                    for write in later:
                        await write(repos)
            except BaseException as error:
                for done in told:
                    if not done.done():
                        done.set_exception(error)
                if not isinstance(error, Exception):
                    raise
            else:
                for done in told:
                    if not done.done():
                        done.set_result(None)


class _UnitIsolation(BaseEventIsolation):
    def __init__(self, storage: SqlStorage, inner: BaseEventIsolation) -> None:
        self.storage = storage
        self.inner = inner

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        async with self.inner.lock(key), self.storage.unit(key):
            yield

    async def close(self) -> None:
        await self.inner.close()
