"""Offers and consent at send time: who may get an offer (the policy), the unsubscribe button
every offer ends with, and the line on how to stop offers, said once per customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup

from bot.business import Business, Marketing
from bot.buttons import Button, OpenBooking, Unsubscribe, dump
from bot.db.models import Customer, OutboxKind, OutboxMessage
from bot.db.repositories import Database
from bot.db.stop_hints import StopHintRepo
from bot.outbox.compose import STOP_HINT, compose, with_unsubscribe
from bot.outbox.policy import Policy
from bot.rendering import Renderer

MOSCOW = ZoneInfo("Europe/Moscow")
POLICY = Policy(Marketing(per_week=5), MOSCOW)
NOON = datetime(2027, 3, 8, 12, 0, tzinfo=MOSCOW)
FAR = NOON + timedelta(days=2)


def person(**fields: object) -> Customer:
    values: dict[str, object] = dict(
        id=1, tg_user_id=7, marketing_opt_out=False, erased_at=None, blocked_at=None
    )
    values.update(fields)
    return Customer(**values)


@pytest.mark.parametrize(
    ("who", "marketing", "service"),
    [
        (person(), "send", "send"),
        (person(marketing_opt_out=True), "skip:opted_out", "send"),  # declined, /stop, the button
        (person(erased_at=NOON), "skip:erased", "skip:erased"),
        (person(tg_user_id=None), "skip:erased", "skip:erased"),  # imported, not in Telegram
        (person(tg_user_id=None, marketing_opt_out=True), "skip:erased", "skip:erased"),
        (person(blocked_at=NOON), "skip:blocked", "skip:blocked"),
        (None, "skip:opted_out", "send"),  # an offer with nobody's consent behind it
    ],
)
def test_who_gets_offers_and_who_gets_service_messages(
    who: Customer | None, marketing: str, service: str
) -> None:
    for kind, wanted in ((OutboxKind.MARKETING, marketing), (OutboxKind.SERVICE, service)):
        verdict = POLICY.judge(kind=kind, now=NOON, not_after=FAR, customer=who)
        got = verdict.decision.value + (f":{verdict.reason}" if verdict.reason else "")
        assert got == wanted, kind


def test_the_unsubscribe_button_is_added_once() -> None:
    label = "🔕 Отписаться от рассылки"
    alone = with_unsubscribe(None, label)
    assert alone == {"buttons": [[{"text": label, "intent": "unsubscribe"}]]}
    assert with_unsubscribe(alone, label) == alone
    booked = dump([[Button("📅 Записаться", OpenBooking())]])
    both = with_unsubscribe(booked, label)
    assert both is not None and [b["intent"] for row in both["buttons"] for b in row] == [
        "open_booking",
        "unsubscribe",
    ]
    own = dump([[Button("Отписаться", Unsubscribe())], [Button("📅", OpenBooking())]])
    assert with_unsubscribe(own, label) == own  # a broadcast's own, where its composer put it
    legacy = {"inline_keyboard": [[{"text": "x", "callback_data": "unsub"}]]}
    assert with_unsubscribe(legacy, label) == legacy  # Telegram's JSON of an old row, as it was


async def _customer(db: Database, tg: int | None = 7) -> int:
    async with db.transaction() as repos:
        row = Customer(
            tg_user_id=tg,
            name="Анна",
            language="ru",
            marketing_opt_out=False,
            created_at=datetime(2027, 1, 1, tzinfo=UTC),
        )
        repos.session.add(row)
        await repos.session.flush()
        return row.id


async def test_the_line_is_taken_once_and_given_back(db: Database) -> None:
    anna = await _customer(db)
    async with db.transaction() as repos:
        hints = StopHintRepo(repos.session)
        assert await hints.take(anna, NOON)
        assert not await hints.take(anna, NOON)
    async with db.transaction() as repos:
        assert not await StopHintRepo(repos.session).take(anna, NOON)  # after a restart too
        await StopHintRepo(repos.session).give_back([anna])
    async with db.transaction() as repos:
        assert await StopHintRepo(repos.session).take(anna, NOON)


def _row(key: str, customer_id: int, kind: OutboxKind, **data: Any) -> OutboxMessage:
    return OutboxMessage(
        key=key,
        customer_id=customer_id,
        kind=kind,
        template="broadcast",
        data=data,
        markup=None,
        not_before=NOON,
        not_after=FAR,
        due_at=NOON,
        state="sending",
        attempts=0,
        created_at=NOON,
    )


@pytest.fixture
def render() -> Renderer:
    return Renderer(MOSCOW)


async def _content(*_: Any) -> tuple[dict[str, Any], None]:
    return {"content": Markup("Весенние скидки!")}, None


async def test_two_offers_composed_at_once_say_it_once(
    db: Database, business: Business, render: Renderer
) -> None:
    anna = await _customer(db)
    hint = str(render.text("ru", STOP_HINT))
    async with db.transaction() as repos:
        customer = await repos.customers.get(anna)
        assert customer is not None
        composed = []
        for row in (
            _row("a", anna, OutboxKind.SERVICE),
            _row("b", anna, OutboxKind.MARKETING),
            _row("c", anna, OutboxKind.MARKETING),
        ):
            text, markup = await compose(
                repos, row, customer, business, MOSCOW, render, NOON, {"broadcast": _content}
            )
            intents = [b["intent"] for r in (markup or {}).get("buttons", []) for b in r]
            composed.append((hint in text, intents.count("unsubscribe"), row.data.get("stop_hint")))
    assert composed == [(False, 0, None), (True, 1, True), (False, 1, None)]


async def test_no_room_for_the_line_leaves_it_to_the_next_offer(
    db: Database, business: Business, render: Renderer
) -> None:
    """A photo's caption is 1,024 units at most: a full one goes without the line, and the
    customer is told with the next offer."""

    async def full_caption(*_: Any) -> tuple[dict[str, Any], None]:
        return {"content": Markup("я" * 1000)}, None

    anna = await _customer(db)
    photo = _row("p", anna, OutboxKind.MARKETING, media={"kind": "photo"})
    async with db.transaction() as repos:
        customer = await repos.customers.get(anna)
        assert customer is not None
        composers = {"broadcast": full_caption}
        text, _ = await compose(repos, photo, customer, business, MOSCOW, render, NOON, composers)
        assert "/stop" not in text and "stop_hint" not in photo.data
        assert await StopHintRepo(repos.session).take(anna, NOON), "still to be said"
