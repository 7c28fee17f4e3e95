"""Engine and sessions: SQLite (WAL, busy timeout) by default, PostgreSQL via asyncpg."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import EMPTY_DICT, await_

SQLITE_BUSY_TIMEOUT_MS = 10_000
READING = "carebot_reading"  # execution option of the read-only sessions
STATEMENT = "statement"  # READING's value for reads of one statement: no BEGIN, the statement is the snapshot


def resolve_url(url: str) -> str:
    """Put a relative SQLite path under the folder the bot runs in and create its folder."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return url
    path = Path(parsed.database)
    if not path.is_absolute():
        path = Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    url = resolve_url(url)
    # hide_parameters: SQL errors must never carry a phone or birthday into the log.
    # A SQLite file has no connection to lose: no ping (a round trip to its thread) per checkout.
    sqlite = make_url(url).get_backend_name() == "sqlite"
    # Nor a ROLLBACK on return when none is open (below): each is a round trip to the driver's thread.
    engine = create_async_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=not sqlite,
        **({"pool_reset_on_return": None} if sqlite else {}),
    )
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN IMMEDIATE.

    The pysqlite driver opens transactions lazily and lets two writers deadlock on the lock
    upgrade (SQLITE_BUSY without waiting); taking the write lock at BEGIN makes concurrent
    writers queue on the busy timeout instead. This is SQLAlchemy's documented recipe.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.__class__ = _OneCallConnection  # this engine's connections only
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
        # pool_reset_on_return=None: a connection comes back to the pool with its transaction
        # rolled back here only if one is still open (the driver knows without asking its thread).
        if (
            state.asyncio_safe
            and not state.terminate_only
            and dbapi_connection.driver_connection.in_transaction
        ):
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        # Reads (`Database.reading`) begin deferred: in WAL they see a snapshot and wait for no one.
        # A read of one statement needs no BEGIN at all (three round trips to the driver's thread).
        reading = connection.get_execution_options().get(READING, False)
        if reading != STATEMENT:
            # Straight to aiosqlite: one round trip to its thread, where SQLAlchemy's cursor takes three.
            driver = connection.connection.driver_connection
            await_(driver.execute("BEGIN" if reading else "BEGIN IMMEDIATE"))


class _OneCallCursor(AsyncAdapt_aiosqlite_cursor):
    """A statement in ONE call to aiosqlite's thread, where SQLAlchemy's cursor makes four (open a
    cursor, execute, fetch, close): each call is a hand-over to that thread and back, the main cost
    of a quick read. The rows are fetched at once, as SQLAlchemy's own cursor does."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: nothing to open
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: Any = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _async_soft_close(self) -> None:
        return None  # closed in its thread already

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            done = await self._connection._execute(
                _run, self._connection, "execute", operation, parameters
            )
            self._description, rows, self._rowcount, self._lastrowid = done
            self._rows = collections.deque(rows)
        return None

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            done = await self._connection._execute(
                _run, self._connection, "executemany", operation, seq_of_parameters
            )
            self._description, rows, self._rowcount, self._lastrowid = done
            self._rows = collections.deque(rows)
        return None


def _run(
    connection: Any, method: str, operation: Any, parameters: Any
) -> tuple[Any, list[Any], int, Any]:
    """In aiosqlite's thread: open a cursor, execute, fetch every row, close."""
    cursor = connection._conn.cursor()
    try:
        if parameters is None:
            getattr(cursor, method)(operation)
        else:
            getattr(cursor, method)(operation, parameters)
        description = cursor.description
        return (
            description,
            cursor.fetchall() if description else [],
            cursor.rowcount,
            cursor.lastrowid,
        )
    finally:
        cursor.close()


class _OneCallConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneCallCursor

    # Outside a transaction (a read of one statement) sqlite3's commit and rollback do nothing:
    # no call into the thread to learn that.
    def rollback(self) -> None:
        if self._connection._connection is not None and self._connection._connection.in_transaction:
            super().rollback()

    def commit(self) -> None:
        if self._connection._connection is not None and self._connection._connection.in_transaction:
            super().commit()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
