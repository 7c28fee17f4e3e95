"""Transactions per customer message and per idle minute: how many write transactions (BEGIN
IMMEDIATE on SQLite: each one waits for the one writer) and read transactions the bot opens.

    python bench/transactions.py [--idle-seconds 60] [--database-url URL]

The real bot (`App`, the outbox sender and the planners running) against the local Bot API test
server, with the tests' fixed clock, in this process. For each step: the writes and reads made
while handling the update (`update`) and, apart, those of the background tasks in the same span
(the sender relaying or delivering, the broadcast watcher, …; the span ends once the bot has
been quiet for a second). Counted by an engine event (tests/transactions.py), so every
transaction is seen, whoever opens it. On SQLite also `trips`: the update's calls into
aiosqlite's thread (each a round trip through the event loop: what an update costs there).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import database_argument, migrated  # noqa: E402
from tests.conftest import ADMIN_CHAT, NOW, TOKEN, RunningBot, make_settings  # noqa: E402
from tests.e2e.helpers import tap  # noqa: E402
from tests.telegram_server import TelegramServer  # noqa: E402
from tests.transactions import UPDATE, TransactionCounter, origin  # noqa: E402

QUIET_SECONDS = 1.0
TRIPS: collections.Counter[str] = (
    collections.Counter()
)  # SQLite: calls into aiosqlite's thread, by origin


def count_trips() -> None:
    """Each call aiosqlite makes into its connection's thread (a cursor, an execute, a fetch, a
    commit) is a round trip through the event loop: on SQLite, the work an update costs."""
    import aiosqlite.core

    run = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        TRIPS[origin()] += 1
        return await run(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]


async def quiet(server: TelegramServer) -> None:
    """Until the bot made no call for a second."""
    seen, since = len(server.calls), time.monotonic()
    while time.monotonic() - since < QUIET_SECONDS:
        await asyncio.sleep(0.05)
        if len(server.calls) != seen:
            seen, since = len(server.calls), time.monotonic()


def show(step: str, counter: TransactionCounter) -> None:
    writes, reads = counter.take()
    trips = TRIPS.get(UPDATE, 0)
    TRIPS.clear()
    background = {k: v for k, v in writes.items() if k != UPDATE}
    print(
        f"{step:<34} writes: update={writes.get(UPDATE, 0):<3} background={sum(background.values()):<3} "
        f"reads: update={reads.get(UPDATE, 0):<3} background={sum(v for k, v in reads.items() if k != UPDATE):<3} "
        f"trips: update={trips:<3} {' '.join(f'{k}={v}' for k, v in sorted(background.items()))}",
        flush=True,
    )


async def run(idle_seconds: float, database_url: str | None) -> None:
    from bot.clock import FixedClock

    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "transactions.sqlite3", database_url)
        await seeder.close()
        server = TelegramServer(TOKEN)
        await server.start()
        bot = RunningBot(
            make_settings(server, url, secret_key="bench-secret-key-not-for-production"),
            FixedClock(NOW),
        )
        await bot.start()
        assert bot.app is not None
        counter = TransactionCounter(bot.app.db.engine)
        count_trips()
        try:
            await server.wait_for(lambda: any(c.method == "setMyCommands" for c in server.calls))
            await quiet(server)
            await asyncio.sleep(2)
            show("start-up (planners at start)", counter)
            await asyncio.sleep(idle_seconds)
            writes, reads = counter.take()
            minute = 60 / idle_seconds
            print(
                f"{'idle, per minute':<34} writes={sum(writes.values()) * minute:.0f} "
                f"reads={sum(reads.values()) * minute:.0f} "
                f"{' '.join(f'{k}={v * minute:.0f}' for k, v in sorted(writes.items()))}",
                flush=True,
            )

            anna = server.user(6001)
            olga = server.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
            await anna.send("/start")
            consent = await anna.reply()
            await quiet(server)
            show("/start (new customer)", counter)
            await tap(anna, consent, "✅")
            await anna.reply()
            await quiet(server)
            show("consent tap", counter)
            await anna.send_contact("79161234567")
            await anna.reply()
            ask_birthday = await anna.reply()
            await quiet(server)
            show("phone shared", counter)
            await tap(anna, ask_birthday, "Пропустить")
            ask_name = await anna.reply()
            await quiet(server)
            show("birthday skipped (tap)", counter)
            await tap(anna, ask_name, anna.first_name)
            ask_offers = await anna.reply()
            await quiet(server)
            show("name kept (tap)", counter)
            await tap(anna, ask_offers, "Да")
            await anna.reply()
            await quiet(server)
            show("offers: yes (tap): welcome coupon", counter)
            await anna.send("/profile")
            await anna.reply()
            await quiet(server)
            show("/profile", counter)
            await anna.send("/mycoupons")
            await anna.reply()
            await quiet(server)
            show("/mycoupons", counter)
            await anna.send("а можно перенести на пятницу?")
            await anna.reply()  # "we got your message"
            await olga.reply()  # the relay in the staff chat
            await quiet(server)
            show("care-chat message (+ its relay)", counter)
            await anna.send("и ещё вопрос")
            await olga.reply()
            await quiet(server)
            show("second care-chat message", counter)
            await olga.send("/sale 4567 2000 маникюр анна")
            await olga.reply()
            await quiet(server)
            show("staff /sale", counter)
            bot.clock.advance(timedelta(hours=3))
            survey = await anna.reply(timeout=15)
            await anna.reply(timeout=15)  # the thank-you offer
            await quiet(server)
            show("(survey and offer delivered)", counter)
            await anna.press(survey, "5")
            await anna.next("editMessageText")
            await anna.reply()  # the question for a comment
            await quiet(server)
            show("survey tap", counter)
            await anna.send("Анна — волшебница")
            await anna.next("editMessageReplyMarkup")  # the question's Skip button goes
            await anna.reply()  # thanks, with the review links
            await olga.reply()  # the praise, shared with the staff
            await quiet(server)
            show("survey comment (+ shared)", counter)
        finally:
            counter.close()
            await bot.stop()
            await server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    database_argument(parser)
    args = parser.parse_args()
    await run(args.idle_seconds, args.database_url)


if __name__ == "__main__":
    asyncio.run(main())
