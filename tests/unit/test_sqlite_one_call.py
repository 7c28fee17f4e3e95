"""SQLite: a statement is one call into aiosqlite's thread (bot/db/engine.py), with the same results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.db.engine import READING, STATEMENT, create_engine


async def test_a_statement_is_one_call_into_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.sqlite3'}")
    calls: list[Any] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await original(self, fn, *args, **kwargs)

    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
            )
            monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
            inserted = await connection.execute(
                text("INSERT INTO t (name) VALUES (:n)"), [{"n": "a"}, {"n": "b"}]
            )
            assert len(calls) == 1 and inserted.rowcount == 2
            calls.clear()
            one = await connection.execute(text("INSERT INTO t (name) VALUES ('c')"))
            assert len(calls) == 1 and one.lastrowid == 3
            calls.clear()
            rows = (await connection.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
            assert len(calls) == 1 and [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
            calls.clear()
            updated = await connection.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
            assert len(calls) == 1 and updated.rowcount == 2
            with pytest.raises(IntegrityError):
                await connection.execute(text("INSERT INTO t (name) VALUES ('a')"))
            monkeypatch.undo()
    finally:
        await engine.dispose()


async def test_a_read_without_transaction_ends_without_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of one statement (no BEGIN) is not rolled back in aiosqlite's thread: there is nothing to undo."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.sqlite3'}")
    calls: list[Any] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await original(self, fn, *args, **kwargs)

    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")  # the connection's first use: its set-up
            await connection.rollback()
            monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
            reading = await connection.execution_options(**{READING: STATEMENT})
            assert (await reading.execute(text("SELECT 2"))).scalar() == 2
            await reading.rollback()
            assert len(calls) == 1  # the statement only
            monkeypatch.undo()
        async with engine.connect() as connection:  # in a transaction: rolled back as before
            await connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            await connection.commit()
            await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            await connection.rollback()
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await engine.dispose()
