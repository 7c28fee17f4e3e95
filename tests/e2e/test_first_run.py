"""The installed command as a new owner meets it: one start-up line, a silent Bot API named and
given up on in bounded time, `tick` saying why it could not deliver, and a SQLite file deleted
under the running bot."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import OutboxMessage
from bot.db.repositories import Database
from tests.conftest import BUSINESS_FILE, NOW, TOKEN, make_settings
from tests.telegram_server import TelegramServer

SETTINGS = (
    "BOT_TOKEN",
    "DATABASE_URL",
    "BUSINESS_FILE",
    "TIMEZONE",
    "ADMIN_CHAT_ID",
    "REDIS_URL",
    "TELEGRAM_API_URL",
    "TELEGRAM_TIMEOUT",
    "SECRET_KEY",
)


def environment(telegram: TelegramServer, folder: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=telegram.url,
        BUSINESS_FILE=str(BUSINESS_FILE),
        DATABASE_URL=f"sqlite+aiosqlite:///{folder}/carebot.sqlite3",
        SECRET_KEY="a-secret-key-for-the-first-run-tests",
        **more,
    )
    return env


@asynccontextmanager
async def carebot(
    args: list[str], env: dict[str, str], cwd: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()  # drains the pipes: a full one would keep wait() from returning


async def read_until(
    process: asyncio.subprocess.Process, needle: str, timeout: float = 30
) -> list[str]:
    """stderr lines up to and including the first that contains `needle`."""
    assert process.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while not lines or needle not in lines[-1]:
            raw = await process.stderr.readline()
            assert raw, f"stderr closed before {needle!r}: {lines}"
            lines.append(raw.decode().rstrip("\n"))
    return lines


async def test_start_up_is_one_line_at_info(telegram: TelegramServer, tmp_path: Path) -> None:
    async with carebot(["run"], environment(telegram, tmp_path), tmp_path) as process:
        lines = await read_until(process, "carebot started")
        await telegram.wait_for(
            lambda: telegram.polls > 0
        )  # polling has started: its lines are out
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert process.stderr is not None
        lines += (await process.stderr.read()).decode().splitlines()
    before_stop = lines[: lines.index(next(line for line in lines if "Received SIGTERM" in line))]
    assert len(before_stop) == 1 and "carebot started bot=@carebot_test_bot" in before_stop[0], (
        lines
    )
    assert "admin_chat=unset (staff features are off until ADMIN_CHAT_ID is set)" in before_stop[0]
    assert not [
        line for line in lines if "apscheduler" in line or "level=info logger=aiogram" in line
    ]


async def test_a_silent_bot_api_is_named_and_given_up_on(
    telegram: TelegramServer, tmp_path: Path
) -> None:
    telegram.hang = True  # accepts connections, never answers
    async with carebot(
        ["run"], environment(telegram, tmp_path, TELEGRAM_TIMEOUT="2"), tmp_path
    ) as process:
        # start-up, then 2 s, not aiogram's minute; the bound is loose for a busy machine (the
        # error line below names the 2 s it waited)
        assert await asyncio.wait_for(process.wait(), 45) == 1
        assert process.stderr is not None
        lines = (await process.stderr.read()).decode().splitlines()
    assert len(lines) == 2, lines
    assert (
        "level=warning" in lines[0]
        and f"waiting for the Bot API at {telegram.url} (getMe)" in lines[0]
    )
    assert lines[1] == (
        f"carebot: the Bot API at {telegram.url} did not answer getMe within 2 s (TELEGRAM_TIMEOUT): "
        "check TELEGRAM_API_URL and the network"
    )


async def queue_message(db: Database, chat_id: int, key: str = "first-run:1") -> None:
    async with db.transaction() as repos:
        repos.session.add(
            OutboxMessage(
                key=key,
                chat_id=chat_id,
                kind="service",
                template="first_run",
                data={},
                text="Здравствуйте",
                not_before=NOW,
                not_after=NOW + timedelta(days=1),
                due_at=NOW,
                state="pending",
                attempts=0,
                created_at=NOW,
            )
        )


async def test_tick_bounds_each_call_to_a_silent_api(
    telegram: TelegramServer, database_url: str, clock: FixedClock
) -> None:
    app = await App.create(make_settings(telegram, database_url, telegram_timeout=1), clock=clock)
    try:
        await queue_message(app.db, 7001)
        telegram.hang = True
        started = time.monotonic()
        result = await asyncio.wait_for(app.tick(), 60)
        assert (
            time.monotonic() - started < 30
        )  # every call was bounded (and retried a few times at most)
        assert (
            result["outbox_sent"] == 0 and result["outbox_retried"] + result["outbox_failed"] == 1
        )
        [reason] = result["outbox_reasons"]
        assert "timeout" in reason.lower()
    finally:
        await app.close()


async def test_tick_prints_why_it_could_not_deliver(
    telegram: TelegramServer, tmp_path: Path
) -> None:
    env = environment(telegram, tmp_path)
    app = await App.create(make_settings(telegram, env["DATABASE_URL"]), clock=FixedClock(NOW))
    try:
        await queue_message(app.db, 7001)
        await queue_message(app.db, 7002, key="first-run:2")
    finally:
        await app.close()
    telegram.scripted = [(500, "Internal Server Error", None)] * 50
    async with carebot(["tick", "--now", NOW.isoformat()], env, tmp_path) as process:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    counts, *reasons = out.decode().splitlines()
    assert "outbox_sent=0" in counts and "outbox_retried=2" in counts
    [reason] = reasons  # both met the same error: one line, counted
    assert (
        reason.startswith('outbox reason="')
        and reason.endswith('" count=2')
        and "Internal Server Error" in reason
    )


async def test_a_deleted_database_file_stops_the_bot(
    telegram: TelegramServer, tmp_path: Path
) -> None:
    path = tmp_path / "carebot.sqlite3"
    async with carebot(["run"], environment(telegram, tmp_path), tmp_path) as process:
        await read_until(process, "carebot started")
        path.unlink()
        started = time.monotonic()
        assert await asyncio.wait_for(process.wait(), 15) == 1
        assert time.monotonic() - started < 8
        assert process.stderr is not None
        lines = (await process.stderr.read()).decode().splitlines()
    said = [
        line
        for line in lines
        if "level=error" in line and "stopping, nothing more is taken" in line
    ]
    assert len(said) == 1 and f"the database file {path} was deleted" in said[0], lines
    assert not path.exists()  # no empty database made in its place
    assert (
        lines[-1]
        == f"carebot: stopped: the database file {path} was deleted; restore it and start again"
    )
