"""aiogram FSM storage in our own database.

aiogram ships memory, Redis and Mongo storages but none for SQL; by default carebot has no
Redis, and a conversation must survive a restart, so this small BaseStorage keeps state in
the `fsm_states` table (its SQL is `repos.fsm`, in the core). With REDIS_URL set, aiogram's own
RedisStorage is used instead.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)

from bot.db.repositories import Database


class SqlStorage(BaseStorage):
    def __init__(self, db: Database, key_builder: KeyBuilder | None = None) -> None:
        self.db = db
        self.key_builder = key_builder or DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    async def _load(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        async with self.db.reading() as repos:
            return await repos.fsm.get(self.key_builder.build(key))

    async def _save(self, key: StorageKey, **values: Any) -> None:
        async with self.db.transaction() as repos:
            await repos.fsm.save(self.key_builder.build(key), **values)

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
