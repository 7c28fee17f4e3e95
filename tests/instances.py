"""Several bot processes as one bot, for tests/e2e/test_instances.py and bench/scale.py: customers
who take offers, a broadcast's worth of queued messages for them, and a `carebot run` process
each with /healthz and /metrics."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, insert, select

from bot.db.engine import create_engine
from bot.db.models import Customer, OutboxMessage
from bot.db.repositories import Database
from tests.telegram_server import TelegramServer

ROOT = Path(__file__).resolve().parent.parent
PRIVACY_VERSION = "2026-11-01"  # tests/data/business.toml's


@asynccontextmanager
async def served_apart(server: TelegramServer) -> AsyncIterator[TelegramServer]:
    """The stand-in on an event loop of its own, in a thread: it counts a request when it gets
    to it, and here nothing else (polling the database, reading /metrics) delays that, which
    would make requests that arrived apart look like a burst."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stand-in", daemon=True)
    thread.start()
    try:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server.start(), loop))
        yield server
    finally:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server.stop(), loop))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def business_text(
    base: Path, *, lease_seconds: int = 20, paid: bool = False, per_second: int | None = None
) -> str:
    """The test business for many messages: quiet hours out of the way, no weekly cap on offers,
    paid broadcasts when asked, and another global rate when given."""
    text = (
        base.read_text()
        .replace('quiet_hours = "21:00-10:00"', 'quiet_hours = "04:00-04:01"')
        .replace("per_week = 2 ", "per_week = 50 ")
        .replace("max_attempts = 8", f"max_attempts = 8\nlease_seconds = {lease_seconds}")
    )
    if per_second is not None:
        text = re.sub(
            r"(?m)^messages_per_second = .*$", f"messages_per_second = {per_second}", text
        )
    if paid and "[broadcasts]" in text:
        text = text.replace("[broadcasts]", "[broadcasts]\nallow_paid_broadcast = true", 1)
    elif paid:
        text += "\n[broadcasts]\nallow_paid_broadcast = true\n"
    return text


async def queue_broadcast(
    url: str,
    count: int,
    chats: int,
    first_chat: int = 3_000_000,
    now: datetime | None = None,
    broadcast_id: int = 1,
) -> None:
    """`chats` customers who take offers and `count` messages of broadcast #1 for them, in turn
    (the same customer again every `chats` messages), each text `m<n>`, due now."""
    engine = create_engine(url)
    now = now or datetime.now(UTC)
    async with Database(engine).transaction() as repos:
        await repos.session.execute(
            insert(Customer),
            [
                dict(
                    tg_user_id=first_chat + n,
                    name=f"Клиент {n}",
                    language="ru",
                    phone=f"+7916{n:07d}",
                    marketing_opt_out=False,
                    data_consent_version=PRIVACY_VERSION,
                    created_at=now,
                    onboarded_at=now,
                )
                for n in range(chats)
            ],
        )
        ids = dict(
            (
                await repos.session.execute(
                    select(Customer.tg_user_id, Customer.id).where(
                        Customer.tg_user_id >= first_chat
                    )
                )
            ).all()
        )
        repos.session.add_all(
            OutboxMessage(
                key=f"broadcast:{broadcast_id}:{n}",
                customer_id=ids[first_chat + n % chats],
                kind="marketing",
                template="broadcast",
                data={},
                text=f"m{n}",
                not_before=now,
                not_after=now + timedelta(hours=2),
                due_at=now,
                state="pending",
                attempts=0,
                created_at=now,
            )
            for n in range(count)
        )
    await engine.dispose()


_engines: dict[str, Any] = {}


async def outbox_states(url: str) -> Counter[str]:
    """The outbox's rows by state (one connection kept per database: the stand-in for Telegram
    shares this process's event loop, and should not wait behind connecting)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_engine(url)
    async with Database(engine).reading() as repos:
        rows = await repos.session.execute(
            select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
        )
        return Counter({state: int(n) for state, n in rows})


async def close_engines() -> None:
    while _engines:
        await _engines.popitem()[1].dispose()


def most_in_a_second(moments: list[float]) -> int:
    moments = sorted(moments)
    most, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def start_update(update_id: int, user_id: int) -> dict[str, Any]:
    """A person who never wrote before sends /start: the update Telegram posts to the webhook."""
    person = {"id": user_id, "is_bot": False, "first_name": "Анна", "language_code": "ru"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(datetime.now(UTC).timestamp()),
            "chat": {"id": user_id, "type": "private", "first_name": "Анна"},
            "from": person,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


class Instance:
    """`carebot run --webhook` in a process of its own, /healthz and /metrics on its port."""

    def __init__(self, number: int, env: dict[str, str], folder: Path) -> None:
        self.number = number
        self.port = free_port()
        self.env = env
        self.log = folder / f"instance{number}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--webhook",
                f"{self.base}/telegram",
                "--listen",
                f"127.0.0.1:{self.port}",
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )

    async def metrics(self, http: aiohttp.ClientSession) -> dict[str, float]:
        async with http.get(f"{self.base}/metrics") as response:
            text = await response.text()
        found: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^(carebot_\w+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
            if match:
                found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        return found

    async def healthy(self, http: aiohttp.ClientSession) -> bool:
        try:
            async with http.get(f"{self.base}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def stop(self, timeout: float = 30) -> None:
        if self.process is None or not self.alive():
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def eventually(what: str, check: Any, seconds: float = 60.0, every: float = 0.5) -> None:
    for _ in range(int(seconds / every)):
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"not within {seconds:g} s: {what}")
