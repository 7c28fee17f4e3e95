"""Interactive benchmark: people talk to the bot while a broadcast runs. Prints figures, asserts
nothing (these machines are shared and noisy).

    python bench/interactive.py [--recipients 3000] [--customers 50] [--rounds 5] [--database-url URL]

The real bot (`App`, polling, in its own process) sends a broadcast to `--recipients` customers
through a local Bot API test server that allows 30 sends/s in all and 20 messages a minute into
a group (429 with retry_after beyond either, as Telegram does). Meanwhile `--customers` other
customers each, `--rounds` times, ask for their coupons (`/mycoupons`: an answer someone waits
for) and write a question to the care chat (relayed into the staff group, coalesced per
customer). Prints: the answers' latency (p50, p95, max: goal p95 under 1 s), relays delivered
vs written (goal: all), how long until the last one reached the staff, the staff-chat posts they
took, 429s (goal 0) and the broadcast's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    ONBOARDED_COLUMNS,
    Seeder,
    bot_environment,
    business_file,
    database_argument,
    line,
    migrated,
    onboarded,
)
from tests.telegram_server import TelegramServer  # noqa: E402

TOKEN = "123456:BENCH-token-for-carebot-interactive"
ADMIN_CHAT = -1001234567890
RECIPIENTS_FROM = 2_000_000
RECEIVED = "Спасибо! Мы получили"
ANSWER_GIVE_UP_SECONDS = 60
START_SPREAD_SECONDS = 10.0


async def seed(seeder: Seeder, recipients: int, customers: int) -> None:
    now = seeder.stamp(datetime.now(UTC))
    await seeder.insert(
        "customers",
        ONBOARDED_COLUMNS,
        [
            *onboarded(RECIPIENTS_FROM, recipients, now),
            # the ones who talk opted out of offers: the broadcast goes to the others only
            *onboarded(1, customers, now, name="Гость", phone="+7925", opted_out=True),
        ],
    )
    await seeder.close()


async def worker(url: str, api: str, business: str) -> None:
    """The bot's process: queue the broadcast, then run exactly as `carebot run` does."""
    bot_environment(TOKEN, url, api, business, admin_chat=ADMIN_CHAT)
    from bot.app import App
    from bot.services.segments import Condition
    from bot.settings import load_settings

    app = await App.create(load_settings())
    await app.broadcasts.create(
        by="bench",
        content={"kind": "text", "html": "<b>Скидки</b> к Новому году"},
        buttons=[],
        coupon=None,
        conditions=[Condition("all")],
        starts_at=None,
    )
    await app.run_polling(handle_signals=True)


async def customer(
    server: TelegramServer,
    tg_id: int,
    rounds: int,
    latencies: list[float],
    written: list[str],
    unanswered: list[int],
) -> None:
    person = server.user(tg_id, f"Гость {tg_id}")
    await asyncio.sleep(
        random.uniform(0, START_SPREAD_SECONDS)
    )  # people do not all come in the same instant
    for n in range(rounds):
        asked = time.monotonic()
        seen = len(server.calls)  # read only what came since: this process is the test server too
        await person.send("/mycoupons")
        while (
            True
        ):  # the answer: the first message to them after the command that is not "we got it"
            fresh, seen = server.calls[seen:], len(server.calls)
            answers = [
                c
                for c in fresh
                if c.chat_id == tg_id
                and c.ok
                and c.method == "sendMessage"
                and not c.text.startswith(RECEIVED)
            ]
            if answers:
                latencies.append(answers[0].at - asked)
                break
            if time.monotonic() - asked > ANSWER_GIVE_UP_SECONDS:
                unanswered.append(tg_id)
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(random.uniform(1.0, 4.0))
        words = f"вопрос-{tg_id}-{n}"
        written.append(words)
        await person.send(f"{words}: а можно перенести на пятницу? 🙏")
        await asyncio.sleep(random.uniform(1.0, 4.0))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def run(
    recipients: int, customers: int, rounds: int, database_url: str | None
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "interactive.sqlite3", database_url)
        await seed(seeder, recipients, customers)
        gc.disable()  # see bench/broadcast.py: the test server's own GC pauses look like bursts
        server = TelegramServer(TOKEN)
        server.rate_limit = 30
        await server.start()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            url,
            server.url,
            str(business_file(Path(folder))),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await server.wait_for(
            lambda: any(c.method == "setMyCommands" for c in server.calls), 120
        )  # the bot is up
        started = time.monotonic()
        latencies: list[float] = []
        written: list[str] = []
        unanswered: list[int] = []
        await asyncio.gather(
            *(
                customer(server, 1 + n, rounds, latencies, written, unanswered)
                for n in range(customers)
            )
        )
        talked = time.monotonic() - started

        def staff_text() -> str:
            return "\n".join(c.text for c in server.sent_to(ADMIN_CHAT))

        deadline = time.monotonic() + 900
        while any(words not in staff_text() for words in written) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if int(time.monotonic() - started) % 15 == 0:  # a sign of life on stderr
                print(
                    f"{time.monotonic() - started:.0f} s: relays {sum(w in staff_text() for w in written)}"
                    f"/{len(written)}, staff posts {len(server.sent_to(ADMIN_CHAT))}",
                    file=sys.stderr,
                )
        relays_done = time.monotonic() - started
        broadcast = sorted(
            c.at for c in server.calls if c.ok and c.chat_id and c.chat_id >= RECIPIENTS_FROM
        )
        while len(broadcast) < recipients and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            broadcast = sorted(
                c.at for c in server.calls if c.ok and c.chat_id and c.chat_id >= RECIPIENTS_FROM
            )
        process.send_signal(signal.SIGTERM)
        await process.wait()
        await server.stop()
        shown = staff_text()
        return {
            "recipients": recipients,
            "customers": customers,
            "answers": len(latencies),
            "unanswered": len(unanswered),
            "answer_p50_s": round(statistics.median(latencies), 3) if latencies else "nan",
            "answer_p95_s": round(percentile(latencies, 0.95), 3),
            "answer_max_s": round(max(latencies), 3) if latencies else "nan",
            "relays_written": len(written),
            "relays_delivered": sum(words in shown for words in written),
            "relays_all_in_s": round(relays_done, 1),
            "staff_posts": len(server.sent_to(ADMIN_CHAT)),
            "talking_s": round(talked, 1),
            "http_429": server.throttled,
            "broadcast_delivered": len(broadcast),
            "broadcast_rate_per_s": round((len(broadcast) - 1) / (broadcast[-1] - broadcast[0]), 2)
            if len(broadcast) > 1
            else 0.0,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    database_argument(parser)
    args = parser.parse_args()
    line("interactive", await run(args.recipients, args.customers, args.rounds, args.database_url))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        asyncio.run(worker(*sys.argv[2:5]))
    else:
        asyncio.run(main())
