"""Paid broadcasts (`[broadcasts] allow_paid_broadcast`): a broadcast's messages go with Telegram's
allow_paid_broadcast at the paid rate, everything else as before at the free one; the report
says what it cost (0.1 Star for each message past the free 30 a second)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import Markup

from bot.app import App
from bot.business import load_business
from bot.clock import FixedClock
from bot.db.models import OutboxMessage
from bot.outbox.sender import OutboxSender
from bot.rendering import Renderer
from bot.services.broadcasts import Progress, paid_cost
from tests.conftest import BUSINESS_FILE, NOW, make_settings
from tests.e2e.helpers import MOSCOW
from tests.instances import business_text, queue_broadcast
from tests.telegram_server import TelegramServer


@pytest.fixture
async def app(telegram: TelegramServer, database_url: str, clock: FixedClock) -> AsyncIterator[App]:
    instance = await App.create(make_settings(telegram, database_url), clock=clock)
    yield instance
    await instance.close()


def _business(tmp_path: Path, *, paid: bool) -> Path:
    path = tmp_path / "business.toml"
    path.write_text(business_text(BUSINESS_FILE, paid=paid))
    return path


async def test_a_paid_broadcast_goes_past_the_free_rate_and_nothing_else_does(
    app: App, telegram: TelegramServer, clock: FixedClock, database_url: str, tmp_path: Path
) -> None:
    telegram.rate_limit = 30  # the free second: the paid sends are not counted in it
    telegram.paid_rate_limit = 1000
    await queue_broadcast(database_url, 90, 90, first_chat=4_000_000, now=clock.now())
    async with app.db.transaction() as repos:  # and one service notice, not a broadcast
        repos.session.add(
            OutboxMessage(
                key="notice:1",
                chat_id=4_100_000,
                kind="service",
                template="notice",
                data={},
                text="notice",
                not_before=clock.now(),
                not_after=clock.now() + timedelta(hours=1),
                due_at=clock.now(),
                state="pending",
                attempts=0,
                created_at=clock.now(),
            )
        )
    business = load_business(_business(tmp_path, paid=True))
    sender = OutboxSender(app.db, app.sender.transport, clock, business, MOSCOW, app.render)
    tally = await sender.drain()
    assert tally.sent == 91
    sends = [c for c in telegram.calls if c.method == "sendMessage" and c.ok]
    paid = [c for c in sends if str(c.params.get("allow_paid_broadcast")).lower() == "true"]
    assert sorted(c.params["text"] for c in paid) == sorted(f"m{n}" for n in range(90))
    assert telegram.paid_sent == 90 and telegram.throttled == 0
    notice = next(c for c in sends if c.params["text"] == "notice")
    assert "allow_paid_broadcast" not in notice.params  # not a broadcast: the free rate


async def test_without_the_switch_a_broadcast_is_sent_as_before(
    app: App, telegram: TelegramServer, clock: FixedClock, database_url: str, tmp_path: Path
) -> None:
    await queue_broadcast(database_url, 5, 5, first_chat=4_200_000, now=clock.now())
    business = load_business(_business(tmp_path, paid=False))
    sender = OutboxSender(app.db, app.sender.transport, clock, business, MOSCOW, app.render)
    assert (await sender.drain()).sent == 5
    assert telegram.paid_sent == 0
    assert not any("allow_paid_broadcast" in c.params for c in telegram.calls)


def test_the_cost_counts_what_went_past_30_in_each_second() -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    moments = [start + timedelta(seconds=n / 45) for n in range(45)]  # 45 in the first second
    moments += [start + timedelta(seconds=1, milliseconds=n * 50) for n in range(20)]  # 20
    moments += [start + timedelta(seconds=5, milliseconds=n) for n in range(130)]  # 130
    assert paid_cost(moments) == (15 + 0 + 100, Decimal("11.5"))
    assert paid_cost([]) == (0, Decimal(0))


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "ru",
            "Платная рассылка: 19\u00a0370 сверх бесплатных 30 в секунду × 0,1 ⭐ = 1\u00a0937 ⭐",
        ),
        ("en", "Paid broadcast: 19,370 past the free 30 a second × 0.1 ⭐ = 1,937 ⭐"),
    ],
)
def test_the_report_says_what_it_cost(lang: str, words: str) -> None:
    render = Renderer(MOSCOW)
    progress = Progress(7, "done", 20_000, sent=20_000, paid=True, paid_messages=19_370)
    progress.stars = Decimal("1937.0")
    text = str(render.text(lang, "broadcast_report", progress=progress))
    assert words in text
    free = Progress(8, "done", 10, sent=10)
    assert "⭐" not in str(render.text(lang, "broadcast_report", progress=free))
    assert isinstance(Markup(text), Markup) and NOW
