"""The weekly digest, end to end: with `[stats] weekly_digest` on, Monday's first planner run from
`digest_hour` writes one outbox row for last week, and the sender delivers it into the admin chat
as a photo (a PNG chart) with the digest as its caption; once a week, never when switched off,
never before the hour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import OutboxMessage
from bot.services import digest as digest_module
from tests.conftest import ADMIN_CHAT, BUSINESS_FILE
from tests.e2e.helpers import app_of, msk
from tests.telegram_server import TelegramServer
from tests.unit.test_charts import png_size
from tests.unit.test_stats import FIRST_MINOR, REPEAT_MINOR, buyer, local

DIGEST_ON = "\n[stats]\nweekly_digest = true\ndigest_hour = 9\n"


def business_file(folder: Path, extra: str) -> Path:
    path = folder / "business.toml"
    path.write_text(BUSINESS_FILE.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


@pytest.fixture
async def app(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[App]:
    """The bot with the digest switched on, on Monday 23.11.2026 at 12:00 in Moscow."""
    async with app_of(telegram, database_url, clock, business_file(tmp_path, DIGEST_ON)) as made:
        yield made


async def week_of_sales(app: App, clock: FixedClock) -> None:
    """Last week (16–22.11.2026): a newcomer's first sale and a regular's repeat one (50 %);
    the week before: one first sale (0 %). Two customers onboarded in Telegram."""
    await buyer(app.db, [(local(2026, 11, 10), FIRST_MINOR)])
    await buyer(app.db, [(local(2026, 11, 17), FIRST_MINOR)])
    await buyer(app.db, [(local(2026, 6, 1), FIRST_MINOR), (local(2026, 11, 18), REPEAT_MINOR)])
    now = clock.now()
    clock.set(msk("2026-11-20T12:00"))  # they joined last week
    for tg, phone in ((5101, "+79161110001"), (5102, "+79161110002")):
        await app.customers.consent(
            tg, name="Анна", username=None, language="ru", source=None, offers=True
        )
        await app.customers.set_phone(tg, phone)
        await app.customers.finish_onboarding(tg)
    clock.set(now)


async def digests(app: App) -> list[tuple[Any, ...]]:
    """The digest rows: key, chat, kind, state, the message's id."""
    async with app.db.reading() as repos:
        o = OutboxMessage
        found = await repos.session.execute(
            select(o.key, o.chat_id, o.kind, o.state, o.message_id)
            .where(o.template == "stats_digest")
            .order_by(o.key)
        )
        return [tuple(row) for row in found]


async def test_monday_digest_goes_to_the_admin_chat_with_a_chart(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    await week_of_sales(app, clock)
    result = await app.tick()
    assert result["stats_digest"] == 1
    [(key, chat_id, kind, state, message_id)] = await digests(app)
    assert (key, chat_id, kind, state) == ("digest:2026-W47", ADMIN_CHAT, "service", "sent")
    [photo] = [c for c in telegram.sent_to(ADMIN_CHAT) if c.method == "sendPhoto"]
    caption = photo.params["caption"]
    assert "Итоги недели</b> · 16.11.2026 — 22.11.2026" in caption
    assert "Доля повторных продаж: <b>50\u00a0%</b> (неделей раньше 0\u00a0%, +50 п.п.)" in caption
    assert "Продаж: 2 на 2\u00a0400\u00a0₽ · новых клиентов: 1" in caption
    assert "Оценка сервиса: оценок не было\nПодробнее: /stats" in caption  # a line each
    upload = photo.upload("photo")
    assert upload.filename == "repeat_share.png" and png_size(upload.data) == (800, 450)
    assert photo.message["message_id"] == message_id

    assert (await app.tick())["stats_digest"] == 0  # once a week
    clock.advance(timedelta(days=1))
    assert (await app.tick())["stats_digest"] == 0
    assert len([c for c in telegram.sent_to(ADMIN_CHAT) if c.method == "sendPhoto"]) == 1
    clock.set(msk("2026-11-30T09:30"))  # next Monday: the week of 23–29.11
    assert (await app.tick())["stats_digest"] == 1
    assert [row[0] for row in await digests(app)] == ["digest:2026-W47", "digest:2026-W48"]
    last = [c for c in telegram.sent_to(ADMIN_CHAT) if c.method == "sendPhoto"][-1]
    assert "23.11.2026 — 29.11.2026" in last.params["caption"]
    assert telegram.refused == []


async def test_not_before_the_hour(app: App, telegram: TelegramServer, clock: FixedClock) -> None:
    clock.set(msk("2026-11-23T08:59"))
    assert (await app.tick())["stats_digest"] == 0
    clock.set(msk("2026-11-23T09:00"))
    assert (await app.tick())["stats_digest"] == 1


async def test_no_digest_when_switched_off(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    off = business_file(tmp_path, DIGEST_ON.replace("true", "false"))
    async with app_of(telegram, database_url, clock, off) as app:
        await week_of_sales(app, clock)
        assert (await app.tick())["stats_digest"] == 0
        assert await digests(app) == []
        assert telegram.sent_to(ADMIN_CHAT) == []


async def test_off_unless_the_business_file_says_so(
    telegram: TelegramServer, database_url: str, clock: FixedClock
) -> None:
    async with app_of(telegram, database_url, clock, BUSINESS_FILE) as app:
        assert app.business.stats.weekly_digest is False
        assert (await app.tick())["stats_digest"] == 0


async def test_a_chart_that_fails_leaves_the_numbers(
    app: App, telegram: TelegramServer, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(digest_module, "draw", broken)
    await week_of_sales(app, clock)
    assert (await app.tick())["stats_digest"] == 1
    [text] = telegram.sent_to(ADMIN_CHAT)
    assert text.method == "sendMessage" and "Итоги недели" in text.text
