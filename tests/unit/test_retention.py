"""The owner's retention periods (`[retention]` in the business file): old care-chat texts
blanked, inactive customers erased as `/forget` erases, each with a destruction record; off by
default; idempotent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business, Retention
from bot.clock import FixedClock
from bot.db.models import (
    CareMessage,
    Consent,
    ConsentVia,
    Customer,
    Erasure,
    ErasureReason,
    OutboxMessage,
    Purchase,
)
from bot.db.repositories import Database
from bot.events import Events
from bot.services.care import CareService, Inbound, StaffReply
from bot.services.customers import CustomerService
from bot.services.retention import RetentionService, years_before
from bot.services.staff import Staff, StaffService

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
OLGA = Staff(1, "Ольга")


def _retention(business: Business, **values: int) -> Business:
    return business.model_copy(update={"retention": Retention(**values)})


@pytest.fixture
def customers(
    db: Database, clock: FixedClock, business: Business, events: Events
) -> CustomerService:
    return CustomerService(db, clock, business, MOSCOW, events, secret_key=b"test-secret-key")


def _service(
    db: Database, clock: FixedClock, business: Business, customers: CustomerService, **values: int
) -> RetentionService:
    return RetentionService(db, clock, _retention(business, **values), customers)


async def _onboard(customers: CustomerService, tg: int, name: str, phone: str) -> int:
    view = await customers.consent(tg, name=name, username=None, language="ru", source=None)
    await customers.set_phone(tg, phone)
    await customers.finish_onboarding(tg)
    return view.id


async def _all(db: Database, model: type, *where: Any) -> list:  # type: ignore[type-arg]
    async with db.transaction() as repos:
        return list(await repos.session.scalars(select(model).where(*where)))


def _reply(tg: int, message_id: int, text: str) -> StaffReply:
    return StaffReply(
        recipient=tg,
        staff_id=1,
        staff_name="Ольга",
        chat_id=-100,
        message_id=message_id,
        thread_id=None,
        kind="text",
        text=text,
        html=None,
        signature=None,
    )


def test_years_before_keeps_the_calendar_day() -> None:
    assert years_before(datetime(2030, 6, 1, 9, tzinfo=UTC), 3) == datetime(
        2027, 6, 1, 9, tzinfo=UTC
    )
    assert years_before(datetime(2028, 2, 29, tzinfo=UTC), 1) == datetime(2027, 2, 28, tzinfo=UTC)


# ---- care-chat texts ---------------------------------------------------------------------------


async def test_old_care_texts_are_blanked_recent_ones_kept(
    db: Database,
    clock: FixedClock,
    business: Business,
    customers: CustomerService,
) -> None:
    care = CareService(db, clock, business)
    clock.set(NOW - timedelta(days=100))
    await _onboard(customers, 7, "Зульфия", "+79161234567")
    await care.record_inbound(Inbound(7, "text", "старый вопрос про беременность", (101,)))
    await care.take_reply(_reply(7, 102, "старый ответ"))
    await care.record_inbound(Inbound(8, "text", "вопрос незнакомца", (103,)))  # no customer
    async with db.transaction() as repos:  # their relays: one sent, one still on its way
        await repos.outbox.queue(
            key="care_in:7:101",
            kind="relay",
            template="care_in",
            chat_id=-100,
            data={"text": "старый вопрос про беременность", "author": {"first_name": "З"}},
            not_before=clock.now(),
            not_after=clock.now() + timedelta(days=7),
            now=clock.now(),
        )
        states = {"care_in:7:101": "sent", "care_out:7:102": "pending"}
        for row in await repos.session.scalars(select(OutboxMessage)):
            row.state, row.text = states[row.key], "старый вопрос"
    clock.set(NOW - timedelta(days=10))
    await care.record_inbound(Inbound(7, "text", "свежий вопрос", (104,)))
    clock.set(NOW)

    off = _service(db, clock, business, customers)
    assert await off.erase_old_care_texts() == 0  # default: off, nothing changes
    assert len([m for m in await _all(db, CareMessage) if m.text]) == 4

    service = _service(db, clock, business, customers, care_texts_days=30)
    assert await service.erase_old_care_texts() == 3
    texts = sorted((m.text or "") for m in await _all(db, CareMessage))
    assert texts == ["", "", "", "свежий вопрос"]  # the rows stay, without words
    relays = {r.key: r for r in await _all(db, OutboxMessage)}
    assert (relays["care_in:7:101"].text, relays["care_in:7:101"].data) == (None, {})
    assert relays["care_out:7:102"].text == "старый вопрос"  # still on its way: later
    [record] = await _all(db, Erasure)
    assert (record.customer_id, record.reason) == (None, ErasureReason.RETENTION)
    assert record.categories == {"care_texts": 3, "outbox_texts": 1}
    assert "вопрос" not in json.dumps(record.categories, ensure_ascii=False)

    assert await service.erase_old_care_texts() == 0  # idempotent: no second record
    assert len(await _all(db, Erasure)) == 1
    async with db.transaction() as repos:  # the relay went; the next run takes its copy
        relay = await repos.session.get(OutboxMessage, relays["care_out:7:102"].id)
        assert relay is not None
        relay.state = "sent"
    assert await service.erase_old_care_texts() == 0
    records = await _all(db, Erasure)
    assert len(records) == 2 and records[1].categories == {"outbox_texts": 1}


# ---- inactive customers ------------------------------------------------------------------------


async def test_inactive_customers_are_erased_as_forget_does_active_ones_kept(
    db: Database,
    clock: FixedClock,
    business: Business,
    customers: CustomerService,
    staff: StaffService,
) -> None:
    long_ago = NOW - timedelta(days=365 * 4)
    clock.set(long_ago)
    idle = await _onboard(customers, 7, "Зульфия Ктоева", "+79161234567")
    bought = await _onboard(customers, 8, "Покупательница", "+79035556677")
    wrote = await _onboard(customers, 9, "Писательница", "+79035556688")
    stopped = await _onboard(customers, 10, "Отписавшаяся", "+79035556699")
    async with db.transaction() as repos:  # from the owner's base, no Telegram yet
        for name, phone, visit in (
            ("Импортированная Старая", "+79990000001", long_ago),
            ("Импортированная Свежая", "+79990000002", NOW - timedelta(days=300)),
        ):
            row = Customer(
                name=name,
                phone=phone,
                language="ru",
                marketing_opt_out=True,
                created_at=NOW - timedelta(days=5),
                imported_at=NOW - timedelta(days=5),
            )
            repos.session.add(row)
            await repos.session.flush()
            repos.session.add(Purchase(customer_id=row.id, amount_minor=100000, at=visit))
    imported_old, imported_recent = [
        c.id for c in await _all(db, Customer, Customer.tg_user_id.is_(None))
    ]
    clock.set(NOW - timedelta(days=365))
    await staff.record_sale(OLGA, bought, 150000)
    await CareService(db, clock, business).record_inbound(Inbound(9, "text", "а вы открыты?", (1,)))
    await customers.set_marketing(10, True)  # their answer about offers is their act too
    await customers.set_marketing(10, False)  # (one of the two records, however they started)
    clock.set(NOW)

    assert await _service(db, clock, business, customers).erase_inactive_customers() == 0
    service = _service(db, clock, business, customers, inactive_customers_years=3)
    assert await service.erase_inactive_customers() == 2

    rows = {c.id: c for c in await _all(db, Customer)}
    for gone in (idle, imported_old):
        row = rows[gone]
        assert row.erased_at == NOW and (row.name, row.phone, row.tg_user_id) == (None,) * 3
    for kept in (bought, wrote, stopped, imported_recent):
        assert rows[kept].erased_at is None and rows[kept].name
    records = {r.customer_id: r for r in await _all(db, Erasure)}
    assert set(records) == {idle, imported_old}
    assert all(r.reason == ErasureReason.RETENTION for r in records.values())
    assert records[idle].categories == {
        "profile_fields": 3,
        "coupons_voided": 1,
    }  # account, name, phone; the welcome coupon
    assert records[imported_old].categories == {"profile_fields": 2}
    flat = json.dumps([r.categories for r in records.values()], ensure_ascii=False)
    assert "Зульфия" not in flat and "+7916" not in flat
    ended = await _all(db, Consent, Consent.customer_id == idle, Consent.granted.is_(False))
    assert {c.via for c in ended} == {ConsentVia.RETENTION}
    async with db.reading() as repos:  # nothing was sent to them
        assert (
            await repos.session.scalar(
                select(OutboxMessage.id).where(OutboxMessage.customer_id == idle)
            )
            is None
        )

    assert await service.erase_inactive_customers() == 0  # idempotent
    assert len(await _all(db, Erasure)) == 2
    clock.set(NOW + timedelta(days=365 * 3))  # three more years: the rest sleep long enough
    assert await service.erase_inactive_customers() == 4
    assert len(await _all(db, Erasure)) == 6
