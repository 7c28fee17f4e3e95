"""Offers only with a consent to them, each with its one-tap unsubscribe button, the first one
saying how to stop them; service messages whatever the consent; nothing at all, not even an
outbox row, for a customer imported from the owner's base who is not in Telegram yet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.clock import FixedClock
from bot.db.models import ConsentKind, ConsentVia, Customer, OutboxKind, OutboxMessage
from bot.outbox.compose import STOP_HINT
from bot.services.birthdays import Birthday
from bot.services.segments import Condition
from bot.services.staff import Staff
from tests.conftest import RunningBot
from tests.e2e.helpers import app_of, business_with, consents_of, msk
from tests.telegram_server import Call, TelegramServer

OLGA = Staff(1, "Ольга")
HINT_RU = "нажмите «Отписаться от рассылки» под этим сообщением или отправьте /stop"
MARKETING_KINDS = {
    "birthday_greeting",
    "holiday_mar8",
    "thanks_offer",
    "coupon_expiring",
    "due_offer",
    "reactivation",
    "broadcast",
}


@pytest.fixture
def roomy_business(tmp_path: Path) -> Path:
    """The test business with room for many offers a week (the cap is not what is tested)."""
    return business_with(tmp_path, "per_week = 2", "per_week = 50")


@pytest.fixture
async def app(
    telegram: TelegramServer, database_url: str, clock: FixedClock, roomy_business: Path
) -> AsyncIterator[App]:
    async with app_of(telegram, database_url, clock, roomy_business) as instance:
        yield instance


async def customer(
    app: App, tg: int, phone: str, *, birthday: Birthday | None = None, offers: bool = True
) -> int:
    """An onboarded customer, with (or without) a consent to offers."""
    view = await app.customers.consent(tg, name="Анна", username=None, language="ru", source=None)
    await app.customers.set_phone(tg, phone)
    await app.customers.set_birthday(tg, birthday)
    await app.customers.finish_onboarding(tg)
    await app.customers.set_marketing(tg, offers, ConsentVia.BUTTON if offers else ConsentVia.STOP)
    return view.id


async def imported(app: App, phone: str, *, birthday: Birthday | None = None) -> int:
    """A customer from the owner's old base: no Telegram account yet. Even with the offers flag
    left on (it is off for a real import), nothing may be planned for them."""
    now = app.clock.now()
    async with app.db.transaction() as repos:
        row = Customer(
            tg_user_id=None,
            name="Из старой базы",
            phone=phone,
            birth_day=birthday.day if birthday else None,
            birth_month=birthday.month if birthday else None,
            language="ru",
            marketing_opt_out=False,
            imported_at=now,
            created_at=now,
        )
        repos.session.add(row)
        await repos.session.flush()
        return row.id


async def sale(app: App, clock: FixedClock, customer_id: int, service: str, at: str) -> None:
    clock.set(msk(at))
    await app.staff.record_sale(OLGA, customer_id, 200000, service, "olga")


async def outbox(app: App) -> list[OutboxMessage]:
    async with app.db.transaction() as repos:
        query = select(OutboxMessage).order_by(OutboxMessage.sent_at, OutboxMessage.id)
        return list(await repos.session.scalars(query))


def delivered(telegram: TelegramServer, row: OutboxMessage) -> Call:
    """The Bot API call that delivered a sent row."""
    return next(
        c
        for c in telegram.calls
        if c.ok
        and c.method in ("sendMessage", "sendPhoto")
        and c.message.get("message_id") == row.message_id
    )


async def test_every_offer_has_the_button_and_the_first_says_how_to_stop(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2026-11-20T12:00"))
    vera = await customer(app, 9, "+79161230009")  # will sleep: one manicure in November
    await sale(app, clock, vera, "manicure", "2026-11-25T12:00")
    clock.set(msk("2027-02-06T12:00"))
    anna = await customer(app, 7, "+79161230007", birthday=Birthday(8, 3, 1990))
    gleb = await customer(app, 10, "+79161230010")  # his welcome coupon runs out on 8 March
    clock.set(msk("2027-02-11T12:00"))
    boris = await customer(app, 8, "+79161230008")
    await sale(app, clock, boris, "pedicure", "2027-02-11T12:00")  # due again in early March
    clock.set(msk("2027-02-11T16:00"))
    await app.tick()  # the thank-you offers (and, the next day, the survey: a service message)
    clock.set(msk("2027-02-12T12:00"))
    await app.tick()
    clock.set(msk("2027-03-08T11:00"))
    await app.broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Весенние скидки!"},
        buttons=[],
        coupon=None,
        conditions=[Condition("all")],
        starts_at=None,
    )
    await app.tick()
    for moment in ("2027-03-08T12:00", "2027-03-12T12:00"):
        clock.set(msk(moment))
        await app.tick()

    sent = [r for r in await outbox(app) if r.state == "sent" and r.customer_id]
    marketing = [r for r in sent if r.kind == OutboxKind.MARKETING]
    assert {r.template for r in marketing} >= MARKETING_KINDS
    for row in sent:
        call = delivered(telegram, row)
        if row.kind == OutboxKind.MARKETING:
            assert call.labels.count("unsubscribe") == 1, row.template
            assert call.template == row.template  # the message itself, the line after it
        else:
            assert "unsubscribe" not in call.labels and HINT_RU not in call.text, row.template
    assert "survey_question" in {r.template for r in sent if r.kind == OutboxKind.SERVICE}
    for person in (anna, boris, vera, gleb):
        theirs = [r for r in marketing if r.customer_id == person]
        first, *others = theirs
        assert others, "each of them got more than one offer"
        assert HINT_RU in delivered(telegram, first).text
        assert (first.data or {}).get("stop_hint") is True
        for row in others:
            assert HINT_RU not in delivered(telegram, row).text, row.template
    two_at_once = [r.template for r in marketing if r.customer_id == anna]
    assert {"birthday_greeting", "holiday_mar8"} <= set(two_at_once)


async def test_customers_not_in_telegram_get_no_rows_at_all(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    """Imported with their visits (due for a manicure, asleep, birthday today): the planners
    write nothing for them, while a customer in Telegram with the same history gets it all."""
    clock.set(msk("2027-01-10T12:00"))
    here_due = await customer(app, 7, "+79161230007", birthday=Birthday(8, 3))
    gone_due = await imported(app, "+79161239007", birthday=Birthday(8, 3))
    here_asleep = await customer(app, 8, "+79161230008")
    gone_asleep = await imported(app, "+79161239008")
    for person in (here_asleep, gone_asleep):
        await sale(app, clock, person, "manicure", "2026-12-01T12:00")
    for person in (here_due, gone_due):
        await sale(app, clock, person, "manicure", "2027-02-17T12:00")  # 21-day cycle
    for moment in ("2027-02-17T16:00", "2027-02-18T16:00", "2027-03-08T11:00"):
        clock.set(msk(moment))
        await app.tick()
    rows = await outbox(app)
    assert not [r.key for r in rows if r.customer_id in (gone_due, gone_asleep)]
    theirs = {r.template for r in rows if r.customer_id in (here_due, here_asleep)}
    assert {"birthday_greeting", "due_offer", "reactivation", "thanks_offer"} <= theirs
    assert "survey_question" in theirs


async def test_no_offers_without_consent_but_service_messages_still_go(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-02-11T12:00"))
    said_no = await customer(app, 7, "+79161230007", birthday=Birthday(8, 3), offers=False)
    await sale(app, clock, said_no, "pedicure", "2027-02-11T12:00")
    for moment in ("2027-02-11T16:00", "2027-02-12T12:00", "2027-03-08T11:00"):
        clock.set(msk(moment))
        await app.tick()
    rows = await outbox(app)
    assert [r.template for r in rows if r.kind == OutboxKind.MARKETING] == []
    [survey] = [r for r in rows if r.template == "survey_question"]
    assert survey.state == "sent"


@pytest.mark.parametrize("withdraw", ["tap", "forged"])
async def test_the_unsubscribe_button_works_in_one_tap(
    carebot: RunningBot, telegram: TelegramServer, withdraw: str
) -> None:
    assert carebot.app is not None
    app, clock = carebot.app, carebot.clock
    anna = telegram.user(6001)
    clock.set(msk("2027-03-07T20:00"))
    anna_id = await customer(app, 6001, "+79161236001", birthday=Birthday(8, 3))
    await app.broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Весенние скидки!"},
        buttons=[],
        coupon=None,
        conditions=[Condition("all")],
        starts_at=None,
    )
    offer = await anna.reply(timeout=40)
    assert offer.template == "broadcast" and offer.labels == ["unsubscribe"]
    assert HINT_RU in offer.text
    assert len(offer.button("Отписаться")["callback_data"].encode()) <= 64
    clock.set(msk("2027-03-08T00:30"))
    assert await app.planners.birthdays() == 1  # her greeting waits for the morning

    if withdraw == "forged":
        await anna.press_data(offer, "unsub:1:2")
        assert (await anna.next("answerCallbackQuery")).template == "stale_button"
        assert [c.via for c in await consents_of(carebot.db, anna_id)][-1] == ConsentVia.BUTTON
        clock.set(msk("2027-03-08T10:30"))
        assert (await anna.reply(timeout=40)).template == "birthday_greeting"
        return
    await anna.press(offer, "Отписаться")
    answer = await anna.next("answerCallbackQuery")
    assert answer.template == "unsubscribed" and "/resume" in answer.params["text"]
    assert (await anna.reply(timeout=40)).template == "marketing_off"
    latest = (await consents_of(carebot.db, anna_id))[-1]
    assert (latest.kind, latest.granted, latest.via) == (
        ConsentKind.MARKETING,
        False,
        ConsentVia.UNSUBSCRIBE,
    )

    clock.set(msk("2027-03-08T10:30"))  # the greeting's morning: it is not sent
    await anna.quiet()
    async with carebot.db.transaction() as repos:
        greeting = await repos.session.scalar(
            select(OutboxMessage).where(OutboxMessage.template == "birthday_greeting")
        )
    assert greeting is not None and (greeting.state, greeting.last_error) == (
        "skipped",
        "opted_out",
    )
    # A visit: no thank-you offer, but the survey (a service message) still comes.
    await app.staff.record_sale(OLGA, anna_id, 200000, "manicure", "olga")
    clock.set(msk("2027-03-08T13:31"))
    survey = await anna.reply(timeout=40)
    assert survey.template == "survey_question" and "unsubscribe" not in survey.labels
    await anna.press(offer, "Отписаться")  # again: already off, still one tap's answer
    assert (await anna.next("answerCallbackQuery")).template == "unsubscribed"
    await anna.quiet()
    async with carebot.db.transaction() as repos:
        thanks = await repos.session.scalar(
            select(OutboxMessage.key).where(OutboxMessage.template == "thanks_offer")
        )
    assert thanks is None


async def test_the_line_on_how_to_stop_is_a_template_in_both_languages(app: App) -> None:
    for lang in ("ru", "en"):
        assert "/stop" in app.render.text(lang, STOP_HINT)
