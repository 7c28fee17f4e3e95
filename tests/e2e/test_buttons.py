"""Buttons stored on outbox rows: the core stores intents, the edge packs them at send time, and
rows stored before intents existed (Telegram's own JSON) still go out exactly as stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.app import App
from bot.buttons import BookingAct, BookingAction, Button, OpenUrl, ShowCoupons, SurveyScore, dump
from bot.clock import FixedClock
from bot.db.models import OutboxMessage
from tests.conftest import ADMIN_CHAT, make_settings
from tests.e2e.helpers import onboard
from tests.telegram_server import TelegramServer


@pytest.fixture
async def app(telegram: TelegramServer, database_url: str, clock: FixedClock) -> AsyncIterator[App]:
    instance = await App.create(make_settings(telegram, database_url), clock=clock)
    yield instance
    await instance.close()


async def _row(app: App, clock: FixedClock, chat_id: int, markup: dict[str, Any]) -> None:
    now = clock.now()
    async with app.db.transaction() as repos:
        repos.session.add(
            OutboxMessage(
                key=f"test:{chat_id}",
                chat_id=chat_id,
                kind="service",
                template="forget_cancelled",
                data={},
                markup=markup,
                not_before=now,
                not_after=now + timedelta(hours=1),
                due_at=now,
                state="pending",
                attempts=0,
                created_at=now,
            )
        )


def _sent_markup(telegram: TelegramServer, chat_id: int) -> dict[str, Any]:
    [call] = [c for c in telegram.calls if c.method == "sendMessage" and c.chat_id == chat_id]
    return call.markup


async def test_a_row_stored_before_intents_is_sent_as_stored(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    legacy = {
        "inline_keyboard": [
            [
                {"text": "1", "callback_data": "survey:7:1"},
                {"text": "2", "callback_data": "survey:7:2"},
            ],
            [{"text": "Мои купоны", "callback_data": "menu:coupons"}],
            [{"text": "Сайт", "url": "https://example.com/"}],
        ]
    }
    await _row(app, clock, 10_001, legacy)
    await app.sender.drain()
    assert _sent_markup(telegram, 10_001) == legacy


async def test_a_row_of_intents_is_sent_with_the_factories_data(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    stored = dump(
        [
            [Button("1", SurveyScore(7, 1)), Button("2", SurveyScore(7, 2))],
            [Button("Мои купоны", ShowCoupons())],
            [Button("Принять", BookingAction(BookingAct.ACCEPT, 12))],
            [Button("Сайт", OpenUrl("https://example.com/"))],
        ]
    )
    assert stored is not None
    await _row(app, clock, 10_002, stored)
    await app.sender.drain()
    assert _sent_markup(telegram, 10_002) == {
        "inline_keyboard": [
            [
                {"text": "1", "callback_data": "survey:7:1"},
                {"text": "2", "callback_data": "survey:7:2"},
            ],
            [{"text": "Мои купоны", "callback_data": "menu:coupons"}],
            [{"text": "Принять", "callback_data": "booking:accept:12"}],
            [{"text": "Сайт", "url": "https://example.com/"}],
        ]
    }


@pytest.mark.parametrize(
    "data",
    [
        "slot:bogus:manicure:anna:29000000:0",
        "bk:nowhere:manicure::0:0",
        "booking:explode:1",
        "cycle:sooner:manicure:1",
        "menu:bogus",
        "onb:bogus",
    ],
)
async def test_a_forged_action_in_a_customers_button_is_stale(
    carebot, telegram: TelegramServer, data: str
) -> None:
    anna = telegram.user(5101)
    await onboard(anna)
    await anna.send("/book")
    menu = await anna.reply()
    await anna.press_data(menu, data)
    answer = await anna.next("answerCallbackQuery")
    assert "неактуальна" in answer.params["text"] and answer.params.get("show_alert")
    await anna.quiet()


@pytest.mark.parametrize(
    "data", ["card:bogus:1", "sale:bogus:-", "complaint:bogus:1", "bc:bogus:1", "bw:bogus:"]
)
async def test_a_forged_action_in_a_staff_button_is_stale(
    carebot, telegram: TelegramServer, data: str
) -> None:
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
    await olga.send("/find 4567")
    answer = await olga.reply()
    await olga.press_data(answer, data)
    assert "неактуальна" in (await olga.next("answerCallbackQuery")).params["text"]
    await olga.quiet()
