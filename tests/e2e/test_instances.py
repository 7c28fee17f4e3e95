"""Three bot processes on one PostgreSQL database and one Redis are one bot: they start at once on
an empty database (one migrates, the others wait), deliver 3,000 queued messages together within
Telegram's limits (the test server refuses more than 30 a second in all and more than one a
second into one chat, with a 429 each), each message exactly once, also when one of them is
stopped (SIGTERM) mid-way and hands its claimed rows back; only one of them runs the planners,
and when that one is killed another takes over. Behind a load balancer an update Telegram posts
twice, to two instances, is handled once, and a post without the webhook's secret is refused.

Needs CAREBOT_TEST_POSTGRES_URL and a Redis on 127.0.0.1:6379 (its database 14 is flushed);
skipped without them. CAREBOT_TEST_INSTANCES_MESSAGES changes the 3,000 (about 100 s at 30/s).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import BUSINESS_FILE, POSTGRES_URL, TOKEN, PostgresDatabases
from tests.instances import (
    Instance,
    business_text,
    close_engines,
    eventually,
    most_in_a_second,
    outbox_states,
    queue_broadcast,
    served_apart,
    start_update,
)
from tests.telegram_server import TelegramServer

REDIS_URL = "redis://127.0.0.1:6379/14"  # the conversation-state tests use 15
MESSAGES = int(os.environ.get("CAREBOT_TEST_INSTANCES_MESSAGES", "3000"))
CHATS = max(1, MESSAGES // 3)  # three messages a chat: the chat's one a second is shared too
SECRET = "instances-webhook-secret"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs CAREBOT_TEST_POSTGRES_URL")


async def _redis_or_skip() -> None:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    except (RedisError, OSError):
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        await redis.aclose()


def _why(refused: Any, sent: list[Any]) -> str:
    """A 429's cause, for the failure message: the second was full, or the chat was too soon."""
    second = sum(1 for c in sent if refused.at - 1.0 < c.at <= refused.at)
    before = [c.at for c in sent if c.chat_id == refused.chat_id and c.at <= refused.at]
    since = f"{refused.at - before[-1]:.3f} s after the chat's last" if before else "first"
    return f"chat {refused.chat_id}: {second} in the second before, {since}"


async def test_three_instances_are_one_bot(
    postgres_databases: PostgresDatabases, tmp_path: Path
) -> None:
    await _redis_or_skip()
    url = await postgres_databases.create("instances")  # empty: the instances migrate it
    server = TelegramServer(TOKEN)
    server.rate_limit, server.chat_gap = 30, 1.0
    async with served_apart(server):
        await _three_instances(server, url, postgres_databases, tmp_path)


async def _three_instances(
    server: TelegramServer, url: str, postgres_databases: PostgresDatabases, tmp_path: Path
) -> None:
    business = tmp_path / "business.toml"
    # the default 29 a second of Telegram's 30: the stand-in counts when it gets to a request
    # (on a machine shared with other test runs its event loop stalls now and then, and takes
    # the requests that waited at once), and a message counts for the instances until its
    # answer came, so no stall makes a second of more than 29
    business.write_text(business_text(BUSINESS_FILE))
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "BUSINESS_FILE": str(business),
        "SECRET_KEY": "carebot-tests-secret-key",
        "WEBHOOK_SECRET": SECRET,
        "PLAN_EVERY_SECONDS": "2",
    }
    env.pop("ADMIN_CHAT_ID", None)
    instances = [Instance(n, env, tmp_path) for n in range(3)]
    http = aiohttp.ClientSession()
    try:
        await asyncio.gather(*(i.start() for i in instances))  # at once, on an empty database

        async def all_healthy() -> bool:
            for instance in instances:
                assert instance.alive(), instance.output()
            return all([await i.healthy(http) for i in instances])

        await eventually("all three instances healthy", all_healthy, 120)

        await queue_broadcast(url, MESSAGES, CHATS)

        # One instance stops gracefully a third of the way (not the planners' leader)
        async def third_delivered() -> bool:
            return (await outbox_states(url))["sent"] >= MESSAGES // 3

        await eventually("a third delivered", third_delivered, MESSAGES / 10 + 60, every=2)
        leaders = [(await i.metrics(http)).get("carebot_planner_leader", 0) for i in instances]
        assert leaders.count(1.0) == 1, leaders
        stopping = next(i for i, lead in zip(instances, leaders, strict=True) if not lead)
        assert stopping.process is not None
        stopping.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(stopping.process.wait(), 60) == 0, stopping.output()

        async def all_delivered() -> bool:
            states = await outbox_states(url)
            return states["sent"] == MESSAGES

        await eventually("every message delivered", all_delivered, MESSAGES / 10 + 120, every=2)

        sent = [c for c in server.calls if c.method == "sendMessage" and c.ok]
        texts = Counter(c.params["text"] for c in sent if str(c.params["text"]).startswith("m"))
        assert len(texts) == MESSAGES  # none lost
        assert max(texts.values()) == 1, texts.most_common(3)  # none twice
        assert server.throttled == 0, [_why(c, sent) for c in server.refused][:10]
        # the three together kept the business's 29 a second, where the stand-in counts them
        assert most_in_a_second([c.at for c in sent]) <= 29

        # The planners: one instance ran them, once per tick; the others never did.
        running = [i for i in instances if i.alive()]
        seen = {i.number: await i.metrics(http) for i in running}
        leader = next(i for i in running if seen[i.number]["carebot_planner_leader"] == 1.0)
        for instance in running:
            runs = seen[instance.number].get("carebot_planner_runs_total", 0)
            if instance is leader:
                assert runs >= 2
            else:
                assert runs == 0, (instance.number, runs)

        # Telegram posts one update twice, to two instances: it is handled once.
        other = next(i for i in running if i is not leader)
        update = start_update(900_001, 5_001)
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for instance in (leader, other):
            async with http.post(
                f"{instance.base}/telegram", json=update, headers=headers
            ) as response:
                assert response.status == 200
        async with http.post(
            f"{other.base}/telegram",
            json=start_update(900_002, 5_002),
            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        ) as response:
            assert response.status == 401  # not Telegram: refused, nothing handled

        async def handled_once() -> bool:
            duplicates = [
                (await i.metrics(http)).get("carebot_updates_duplicate_total", 0)
                for i in (leader, other)
            ]
            return sum(duplicates) == 1 and len(server.sent_to(5_001)) >= 1

        await eventually("the update handled by one instance, dropped by the other", handled_once)
        assert len(server.sent_to(5_001)) == 1
        assert server.sent_to(5_002) == []

        # The leader is killed: the other takes the planners over within a few ticks.
        assert leader.process is not None
        leader.process.send_signal(signal.SIGKILL)
        await leader.process.wait()

        async def took_over() -> bool:
            metrics = await other.metrics(http)
            return (
                metrics.get("carebot_planner_leader") == 1.0
                and metrics.get("carebot_planner_runs_total", 0) >= 1
            )

        await eventually("another instance runs the planners", took_over, 60)
    finally:
        for instance in instances:
            if instance.alive():
                assert instance.process is not None
                instance.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(instance.process.wait(), 30)
                except TimeoutError:
                    instance.process.kill()
        await http.close()
        await close_engines()
        await postgres_databases.drop(url)
