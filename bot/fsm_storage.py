"""aiogram FSM storage in our own database.

aiogram ships memory, Redis and Mongo storages but none for SQL; by default carebot has no
Redis, and a conversation must survive a restart, so this small BaseStorage keeps state in
the `fsm_states` table. With REDIS_URL set, aiogram's own RedisStorage is used instead.
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
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import FsmRecord


class SqlStorage(BaseStorage):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], key_builder: KeyBuilder | None = None
    ) -> None:
        self.sessions = sessions
        self.key_builder = key_builder or DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    async def _load(self, key: StorageKey) -> FsmRecord | None:
        async with self.sessions() as session:
            return await session.get(FsmRecord, self.key_builder.build(key))

    async def _save(self, key: StorageKey, **values: Any) -> None:
        built = self.key_builder.build(key)
        async with self.sessions.begin() as session:
            record = await session.get(FsmRecord, built, with_for_update=True)
            state = values.get("state", record.state if record else None)
            data = values.get("data", record.data if record else {})
            if state is None and not data:
                await session.execute(delete(FsmRecord).where(FsmRecord.key == built))
                return
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(FsmRecord).values(key=built, state=state, data=data)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[FsmRecord.key], set_={"state": state, "data": data}
                )
            )

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._save(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._load(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        await self._save(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._load(key)
        return dict(record.data) if record and record.data else {}

    async def close(self) -> None:
        """The engine is disposed by the app that owns it."""

    async def count(self) -> int:
        async with self.sessions() as session:
            return len((await session.scalars(select(FsmRecord.key))).all())
