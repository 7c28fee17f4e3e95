"""Which instance runs the planners: one at a time, the others stand by.

On PostgreSQL a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated
connection: the instance holding it runs the planners. If that process dies, PostgreSQL ends its
session and the lock is free at once; the others try for it every `every` seconds, so one of them
takes over within that period. A leader whose connection breaks stops planning until it holds the
lock again. Planners stay idempotent anyway (unique keys), so a moment of two leaders (a network
partition) adds nothing twice.

On SQLite (one process by design) this instance always leads: nothing changes there.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import LEADER

log = logging.getLogger("carebot.leader")

# The advisory lock's key: one bot per database ("carebot" in ASCII).
PLANNERS_LOCK = 0x63617265626F74


class Leadership:
    """Always the leader (SQLite: one process)."""

    leading = True

    async def check(self) -> bool:
        """Become or stay the leader if possible; whether this instance leads now."""
        LEADER.set(1)
        return True

    async def close(self) -> None:
        LEADER.set(0)


class AdvisoryLockLeadership(Leadership):
    """PostgreSQL: the holder of `pg_try_advisory_lock(PLANNERS_LOCK)` leads."""

    def __init__(self, engine: AsyncEngine, key: int = PLANNERS_LOCK) -> None:
        self.engine = engine
        self.key = key
        self.leading = False
        self._connection: Any = None

    async def check(self) -> bool:
        if self._connection is not None:
            try:
                await self._connection.execute(text("SELECT 1"))
            except Exception:
                log.warning("lost the planners' lock (its database connection broke)")
                await self._drop()
        if self._connection is None:
            connection = await self.engine.connect()
            try:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                got = (
                    await connection.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                    )
                ).scalar()
            except BaseException:
                await connection.close()
                raise
            if got:
                self._connection = connection
                log.info("this instance runs the planners now")
            else:
                await connection.close()
        self.leading = self._connection is not None
        LEADER.set(1 if self.leading else 0)
        return self.leading

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self.leading = False
        LEADER.set(0)
        if connection is not None:
            try:
                await connection.invalidate()
            except Exception:
                pass

    async def close(self) -> None:
        """Let go (a graceful stop): another instance takes over at its next try."""
        connection, self._connection = self._connection, None
        self.leading = False
        LEADER.set(0)
        if connection is not None:
            try:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception:
                pass
            finally:
                await connection.close()


def leadership(engine: AsyncEngine) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(engine)
    return Leadership()
