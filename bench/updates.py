"""How fast updates are handled: carebot beside a bare aiogram bot, in one run, against the same
local Bot API stand-in (tests/telegram_server.py). Prints figures, asserts nothing (these
machines are shared and noisy: compare the ratios of one run, not absolute times).

    python bench/updates.py [--customers 200] [--rounds 3] [--database-url URL] [--profile FILE]

Each bot runs in its own process, polling the stand-in exactly as in production (carebot is
`App` as `carebot run` wires it). Per round:

- `start`: `--customers` different people who never wrote before send `/start` in the same
  instant. The bare bot answers each with one text; carebot asks for consent (one message with
  buttons, the FSM state set). The latency of one answer runs from the moment its update was
  queued in the stand-in to the moment the stand-in received the answer.
- `care`: as many onboarded customers (seeded) each write a question to the care chat in the
  same instant; the latency runs until carebot's "we got your message" reached them (the
  message itself is then stored with its relay queued, in the same transaction; the relay into
  the staff group goes at Telegram's 20 a minute and is not what is measured). The bare bot
  answers each text with one text.

A round 0 before the printed ones warms both bots up (first use of each type, connections).
Printed per round and bot: updates/s (all answers / from the first update queued to the last
answer), p50 / p95 / max latency, the CPU time the bot's process (all its threads) used per
update while the burst was answered, carebot's rate as a share of the bare bot's (`ratio`) and
the same by the work done (`cpu_ratio`: the bare bot's CPU per update over carebot's, steadier
than the rates on a busy machine, where the bare bot's own rate swings threefold between rounds).

One answer per person: the stand-in's per-chat limits and carebot's own (about one message a
second into one private chat) never hold an answer back. carebot's global budget (Telegram's
~30 messages a second, `[outbox] messages_per_second`) is raised to its maximum, 1000, for the
run, so what is measured is how fast updates are handled, not that budget: with the default 29
a burst of 200 answers takes 200 / 29 ≈ 7 s whatever the handling costs.

`--profile FILE` runs carebot under cProfile and writes its statistics (pstats) there; print the
top with `python -m pstats FILE` (sort tottime, stats 30).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The bare bot is aiogram as it ships: its process imports nothing of ours before aiogram, so
# none of carebot's own speed-ups (bot/lazy_types.py, which `tests` installs) reach it.
BARE_WORKER = sys.argv[1:2] == ["--bare-worker"]
if not BARE_WORKER:
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

TOKEN = "123456:BENCH-token-for-carebot-updates"
ADMIN_CHAT = -1001234567890
NEWCOMERS_FROM = 1_000_000  # people who send /start, fresh ids every round and bot
ONBOARDED_FROM = 5_000_000  # seeded customers who write to the care chat
BARE_ANSWER = "Здравствуйте!"
SETTLE_SECONDS = 1.5  # after start-up, before the first burst (the first planner run is over)
GIVE_UP_SECONDS = 120


async def seed(seeder: Seeder, count: int) -> None:
    now = seeder.stamp(datetime.now(UTC))
    await seeder.insert(
        "customers",
        ONBOARDED_COLUMNS,
        onboarded(ONBOARDED_FROM, count, now),
    )
    await seeder.close()


async def carebot_worker(url: str, api: str, business: str, profile: str) -> None:
    """carebot's process: run exactly as `carebot run` does."""
    bot_environment(TOKEN, url, api, business, admin_chat=ADMIN_CHAT)
    from bot.app import App
    from bot.cli import freeze_start_up
    from bot.settings import load_settings

    app = await App.create(load_settings())
    freeze_start_up()  # as `carebot run` does
    if not profile:
        await app.run_polling(handle_signals=True)
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await app.run_polling(handle_signals=True)
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


async def bare_worker(api: str) -> None:
    """The bare bot: aiogram's defaults, one text for every message."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    dp = Dispatcher()

    @dp.message()
    async def answer(message: Message) -> None:
        await message.answer(BARE_ANSWER)

    @dp.startup()
    async def ready() -> None:
        await bot.set_my_commands([])

    await dp.start_polling(bot, handle_signals=True)


def cpu_seconds(pid: int) -> float:
    """CPU time a process used so far, all its threads (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def burst(
    server: TelegramServer, people: list[int], text: str, answered: Any, pid: int
) -> dict[str, Any]:
    """Everyone in `people` writes `text` in the same instant; figures once each has an answer
    (`answered(call)` tells one), and the CPU time the bot's process spent meanwhile."""
    cpu = cpu_seconds(pid)
    seen = len(server.calls)
    pushed: dict[int, float] = {}
    for tg_id in people:
        pushed[tg_id] = time.monotonic()
        await server.user(tg_id, f"Гость {tg_id}").send(text)
    first = min(pushed.values())
    answers: dict[int, float] = {}
    while len(answers) < len(people) and time.monotonic() - first < GIVE_UP_SECONDS:
        fresh, seen = server.calls[seen:], len(server.calls)
        for call in fresh:
            if (
                call.chat_id in pushed
                and call.chat_id not in answers
                and call.ok
                and answered(call)
            ):
                answers[call.chat_id] = call.at
        await asyncio.sleep(0.005)
    cpu = cpu_seconds(pid) - cpu
    latencies = [answers[tg_id] - pushed[tg_id] for tg_id in answers]
    span = max(answers.values()) - first if answers else float("nan")
    return {
        "answered": len(answers),
        "rate_per_s": round(len(answers) / span, 1) if answers else 0.0,
        "p50_s": round(statistics.median(latencies), 3) if latencies else "nan",
        "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3) if latencies else "nan",
        "cpu_ms_per_update": round(1000 * cpu / len(people), 2),
    }


async def started(process: asyncio.subprocess.Process, server: TelegramServer) -> None:
    while not any(c.method == "setMyCommands" for c in server.calls):
        if process.returncode is not None:
            raise SystemExit(f"the bot's process exited with {process.returncode}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(SETTLE_SECONDS)


async def stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    await process.wait()


def _is_message(call: Any) -> bool:
    return bool(call.method == "sendMessage")


# What counts as the answer, by scenario and bot: carebot's consent question, its "we got it".
ANSWERS = {
    ("start", "bare"): _is_message,
    ("care", "bare"): _is_message,
    ("start", "carebot"): lambda c: (
        _is_message(c) and "onb:consent" in str(c.params.get("reply_markup", ""))
    ),
    ("care", "carebot"): lambda c: _is_message(c) and c.text.startswith("Спасибо! Мы получили"),
}


async def run(
    customers: int, rounds: int, database_url: str | None, profile: str | None
) -> list[tuple[str, dict[str, Any]]]:
    results: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as folder:
        url, seeder = await migrated(folder, "updates.sqlite3", database_url)
        await seed(seeder, customers * (rounds + 1))
        business = business_file(Path(folder))
        business.write_text(
            business.read_text().replace("messages_per_second = 29", "messages_per_second = 1000")
        )
        gc.disable()  # see bench/broadcast.py: the stand-in's own GC pauses would be measured too
        # One stand-in per bot (the same server, in this process): each takes its own updates.
        servers = {"bare": TelegramServer(TOKEN), "carebot": TelegramServer(TOKEN)}
        for server in servers.values():
            await server.start()
        try:
            output = asyncio.subprocess.DEVNULL
            processes = {
                "bare": await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--bare-worker",
                    servers["bare"].url,
                    cwd=ROOT,
                    stdout=output,
                    stderr=output,
                ),
                "carebot": await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--worker",
                    url,
                    servers["carebot"].url,
                    str(business),
                    profile or "",
                    cwd=ROOT,
                    stdout=output,
                    stderr=output,
                ),
            }
            for name, process in processes.items():
                await started(process, servers[name])
            newcomer = NEWCOMERS_FROM
            for n in range(
                rounds + 1
            ):  # round 0 warms both up (first use of each type, connections)
                for scenario in ("start", "care"):
                    figures: dict[str, dict[str, Any]] = {}
                    for name in processes:
                        # the other bot is stopped meanwhile: the two do not share the CPU
                        other = processes["carebot" if name == "bare" else "bare"]
                        other.send_signal(signal.SIGSTOP)
                        await asyncio.sleep(0.2)
                        if scenario == "care" and name == "carebot":
                            people = list(
                                range(
                                    ONBOARDED_FROM + n * customers,
                                    ONBOARDED_FROM + (n + 1) * customers,
                                )
                            )
                        else:
                            people = list(range(newcomer, newcomer + customers))
                            newcomer += customers
                        text = (
                            "/start"
                            if scenario == "start"
                            else f"вопрос {n}: а можно перенести на пятницу?"
                        )
                        figures[name] = await burst(
                            servers[name],
                            people,
                            text,
                            ANSWERS[(scenario, name)],
                            processes[name].pid,
                        )
                        other.send_signal(signal.SIGCONT)
                    if n:
                        results.append(
                            (scenario, {"round": n, "customers": customers, **_compare(figures)})
                        )
            for process in processes.values():
                await stop(process)
        finally:
            for server in servers.values():
                await server.stop()
    return results


def _compare(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    bare, care = figures["bare"], figures["carebot"]
    flat = {f"bare_{k}": v for k, v in bare.items()} | {f"carebot_{k}": v for k, v in care.items()}
    flat["ratio"] = (
        round(care["rate_per_s"] / bare["rate_per_s"], 3) if bare["rate_per_s"] else "nan"
    )
    # the same comparison by the work done (bare's CPU per update / carebot's): steadier on a busy machine
    flat["cpu_ratio"] = (
        round(bare["cpu_ms_per_update"] / care["cpu_ms_per_update"], 3)
        if care["cpu_ms_per_update"]
        else "nan"
    )
    return flat


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile", metavar="FILE", default=None, help="cProfile carebot's process into FILE"
    )
    database_argument(parser)
    args = parser.parse_args()
    backend = "postgresql" if (args.database_url or "").startswith("postgresql") else "sqlite"
    for title, figures in await run(args.customers, args.rounds, args.database_url, args.profile):
        line(f"updates {title} {backend}", figures)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        asyncio.run(carebot_worker(*sys.argv[2:6]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--bare-worker":
        asyncio.run(bare_worker(sys.argv[2]))
    else:
        asyncio.run(main())
