"""The SQLite file under a running bot: deleted, replaced or turned read-only is a fault.

SQLite keeps writing into a file that was deleted (the open descriptor keeps its inode alive),
so without a check the bot carries on for days and everything is gone at the next restart.
The running bot compares the file with the one it opened every few seconds, and watches its
own writes for "attempt to write a readonly database" and "disk I/O error".
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# What SQLite says when the file went away or became read-only under an open connection.
_WRITE_FAULTS = ("readonly database", "disk i/o error")


class FileGuard:
    def __init__(self, path: Path) -> None:
        self.path = path
        opened = path.stat()
        self._identity = (opened.st_dev, opened.st_ino)
        self._write_fault: str | None = None

    @classmethod
    def watch(cls, engine: AsyncEngine) -> FileGuard | None:
        """A guard on the engine's SQLite file (None for PostgreSQL or an in-memory database),
        told of the write errors that mean the file is gone or read-only."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        guard = cls(Path(database))
        event.listen(engine.sync_engine, "handle_error", guard._on_error)
        event.listen(engine.sync_engine, "do_connect", guard._before_connect)
        return guard

    def _before_connect(self, *_: Any) -> None:
        """A new connection to a deleted file would create an empty one in its place (which the
        next start would migrate and run on, everything gone): refuse it instead."""
        problem = self.problem()
        if problem is not None:
            raise sqlite3.OperationalError(f"the database file {self.path} {problem}")

    def _on_error(self, context: Any) -> None:
        message = str(context.original_exception).lower()
        if any(fault in message for fault in _WRITE_FAULTS):
            self._write_fault = (
                f"refused a write ({str(context.original_exception).splitlines()[0]})"
            )

    def problem(self) -> str | None:
        """What is wrong with the file now, in a few words, or None."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as error:
            return f"cannot be looked at ({error.strerror})"
        if (now.st_dev, now.st_ino) != self._identity:
            return "was replaced by another file"
        # Mode bits too: root may write anything, but a file made read-only was meant to be.
        if not os.access(self.path, os.W_OK) or not now.st_mode & (
            stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        ):
            return "turned read-only"
        return self._write_fault
