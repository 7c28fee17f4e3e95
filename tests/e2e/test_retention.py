"""Destruction records and the owner's retention periods, end to end: `/forget`, then the staff's
`/erasures` lists it; `carebot tick` with a clock erases old care-chat texts and inactive
customers when the business file says so, and nothing when it does not (the default)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import CareMessage, Customer, Erasure, ErasureReason
from tests.e2e.helpers import ask_staff, bot_on, business_plus, customer_id_of, forget, onboard
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

NAME = "Евлампия"
OLD_WORDS = "у меня аллергия на шеллак Кодиак"


async def test_forget_then_staff_list_the_record_without_a_name(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    customer = telegram.user(5001, NAME, username="evlampia_q")
    await onboard(customer, phone="79161234567", birthday="14.03.1990")
    customer_id = await customer_id_of(carebot.db, 5001)
    await ask_staff(customer, olga, OLD_WORDS)
    await olga.send(f"/note #{customer_id} {NAME} просила звонить после 18")
    await olga.reply()

    await olga.send("/erasures")
    empty = await olga.reply()
    assert empty.template == "erasures" and "пока нет" in empty.text

    await forget(customer)
    await olga.send("/erasures")
    listed = await olga.reply()
    assert listed.template == "erasures"
    assert f"#1 · клиент #{customer_id} · " in listed.text
    assert "по просьбе клиента" in listed.text
    assert "профиль" in listed.text and "1 сообщение чата" in listed.text
    assert "1 заметка" in listed.text
    for personal in (NAME, "79161234567", "evlampia_q", "шеллак", "после 18", "5001"):
        assert personal not in listed.text, personal


async def test_erasures_is_for_staff_only(carebot, telegram: TelegramServer, olga: Person) -> None:
    customer = telegram.user(5002, "Анна")
    await onboard(customer)
    await customer.send("/erasures")
    assert (await customer.reply()).template == "staff_only"
    insider = telegram.user(9001, "Ольга")  # a staff member, but in a private chat with the bot
    await insider.send("/erasures")
    assert (await insider.reply()).template == "staff_only"
    outsider = telegram.staff(9003, "Чужой", -1009999)  # a group that is not the admin chat
    await outsider.send("/erasures")
    assert (await outsider.reply()).template == "staff_only"
    await olga.send("/erasures два")  # bad input: a polite line, nothing else
    assert "/erasures 2" in (await olga.reply()).text


async def test_the_list_is_paged_with_the_total(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    async with carebot.db.transaction() as repos:
        for n in range(25):
            repos.erasure.record(
                n + 1, ErasureReason.FORGET, {"profile_fields": 1}, carebot.clock.now()
            )
    await olga.send("/erasures")
    first = await olga.reply()
    assert "25 записей, страница 1 из 3" in first.text and "/erasures 2" in first.text
    assert "#25 · клиент #25" in first.text and "#15 ·" not in first.text
    await olga.send("/erasures 3")
    last = await olga.reply()
    assert "страница 3 из 3" in last.text and "#1 · клиент #1 " in last.text
    await olga.send("/erasures 99")  # past the end: the last page
    assert "страница 3 из 3" in (await olga.reply()).text


# ---- retention by the planner ------------------------------------------------------------------


@pytest.fixture
async def keeping(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[InProcessBot]:
    """The bot with retention on: care texts 30 days, customers inactive 2 years."""
    business = business_plus(
        tmp_path, "\n[retention]\n" + "care_texts_days = 30\ninactive_customers_years = 2\n"
    )
    async with bot_on(telegram, database_url, clock, business) as running:
        yield running


async def _story(bot: InProcessBot, telegram: TelegramServer, olga: Person) -> tuple[int, int]:
    """Евлампия writes once and is never heard from again; Анна writes then, a year later, and
    ten days before the tick, 800 days on."""
    clock = bot.clock
    evlampia, anna = telegram.user(5001, NAME), telegram.user(5002, "Анна")
    await onboard(evlampia, phone="79161234567")
    await onboard(anna, phone="79035556677")
    await ask_staff(evlampia, olga, OLD_WORDS)
    await ask_staff(anna, olga, "первый вопрос Анны")
    clock.advance(timedelta(days=400))
    await ask_staff(anna, olga, "вопрос Анны через год")
    clock.advance(timedelta(days=390))
    await ask_staff(anna, olga, "свежий вопрос Анны")
    await evlampia.quiet()
    clock.advance(timedelta(days=10))
    return await customer_id_of(bot.db, 5001), await customer_id_of(bot.db, 5002)


async def _texts(bot: InProcessBot, tg: int) -> list[str | None]:
    async with bot.db.transaction() as repos:
        query = (
            select(CareMessage.text).where(CareMessage.tg_user_id == tg).order_by(CareMessage.id)
        )
        return list(await repos.session.scalars(query))


async def test_tick_erases_old_care_texts_and_inactive_customers(
    keeping: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    evlampia_id, anna_id = await _story(keeping, telegram, olga)
    assert await _texts(keeping, 5001) == [OLD_WORDS]
    calls_before = len(telegram.calls)
    app = keeping.app
    assert app is not None

    result = await app.tick()
    assert result["retention_care_texts"] == 3  # Евлампия's, and Анна's two older ones
    assert result["retention_customers"] == 1  # Евлампия
    assert await _texts(keeping, 5001) == []  # erased with her
    assert await _texts(keeping, 5002) == [None, None, "свежий вопрос Анны"]
    sent_to_her = [c for c in telegram.calls[calls_before:] if c.chat_id == 5001]
    assert sent_to_her == []  # nobody writes to tell her
    async with keeping.db.transaction() as repos:
        evlampia = await repos.session.get(Customer, evlampia_id)
        anna = await repos.session.get(Customer, anna_id)
        assert evlampia and evlampia.erased_at and evlampia.name is None and evlampia.phone is None
        assert anna and anna.erased_at is None and anna.name == "Анна"
        records = list(await repos.session.scalars(select(Erasure).order_by(Erasure.id)))
    assert [(r.customer_id, r.reason) for r in records] == [
        (None, ErasureReason.RETENTION),
        (evlampia_id, ErasureReason.RETENTION),
    ]
    assert records[0].categories["care_texts"] == 3

    again = await app.tick()  # idempotent
    assert (again["retention_care_texts"], again["retention_customers"]) == (0, 0)

    await olga.send("/erasures")
    listed = await olga.reply()
    assert listed.text.count("по сроку хранения") == 2
    assert "переписка" in listed.text and f"клиент #{evlampia_id}" in listed.text
    assert NAME not in listed.text and "шеллак" not in listed.text


async def test_retention_is_off_by_default(carebot, telegram: TelegramServer, olga: Person) -> None:
    evlampia_id, _ = await _story(carebot, telegram, olga)
    carebot.clock.advance(timedelta(days=3650))
    result = await carebot.app.tick()
    assert (result["retention_care_texts"], result["retention_customers"]) == (0, 0)
    assert await _texts(carebot, 5001) == [OLD_WORDS]
    async with carebot.db.transaction() as repos:
        evlampia = await repos.session.get(Customer, evlampia_id)
        assert evlampia and evlampia.erased_at is None and evlampia.name == NAME
        assert list(await repos.session.scalars(select(Erasure))) == []
