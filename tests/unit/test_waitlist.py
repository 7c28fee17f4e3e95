"""The waitlist without Telegram: which entries a freed time fits, who is offered it and when
(order of joining, a few at a time, quiet hours), the race for it, the next round, expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business, Waitlist, load_business
from bot.clock import FixedClock
from bot.db.models import Booking, Customer, OutboxMessage, WaitlistEntry, WaitlistOffer
from bot.db.repositories import Database
from bot.events import Events
from bot.rendering import Renderer
from bot.services.booking import BookingService, BookOutcome
from bot.services.customers import CustomerService
from bot.services.exporting import Exporter
from bot.services.staff import StaffService
from bot.services.waitlist import (
    DayPart,
    JoinOutcome,
    TakeOutcome,
    WaitlistService,
    fits,
    pick,
)
from bot.settings import ConfigError
from tests.conftest import BUSINESS_FILE

MOSCOW = ZoneInfo("Europe/Moscow")
MONDAY = date(2026, 11, 30)  # Анна works 10-19 (a break 14:00-14:30); Ольга from Wednesday
TUESDAY = MONDAY + timedelta(days=1)


def moscow(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=MOSCOW).astimezone(UTC)


def entry(
    customer: int,
    service: str = "manicure",
    master: str | None = None,
    days: tuple[date, date] = (MONDAY, TUESDAY),
    minutes: tuple[int | None, int | None] = (None, None),
) -> WaitlistEntry:
    return WaitlistEntry(
        id=customer,
        customer_id=customer,
        service_id=service,
        master_id=master,
        first_day=days[0],
        last_day=days[1],
        from_minute=minutes[0],
        to_minute=minutes[1],
    )


# ---- matching -------------------------------------------------------------------------------------


def test_an_entry_fits_its_service_master_days_and_time_of_day() -> None:
    anyone = entry(1)
    assert fits(anyone, "manicure", "anna", MONDAY, 15 * 60)
    assert fits(anyone, "manicure", "olga", TUESDAY, 10 * 60)  # any master, the last day
    assert not fits(anyone, "pedicure", "anna", MONDAY, 15 * 60)  # another service
    assert not fits(anyone, "manicure", "anna", MONDAY - timedelta(days=1), 15 * 60)
    assert not fits(anyone, "manicure", "anna", TUESDAY + timedelta(days=1), 15 * 60)
    only_anna = entry(2, master="anna")
    assert fits(only_anna, "manicure", "anna", MONDAY, 15 * 60)
    assert not fits(only_anna, "manicure", "olga", MONDAY, 15 * 60)
    afternoon = entry(3, minutes=(12 * 60, 17 * 60))
    assert fits(afternoon, "manicure", "anna", MONDAY, 12 * 60)
    assert fits(afternoon, "manicure", "anna", MONDAY, 16 * 60 + 30)
    assert not fits(afternoon, "manicure", "anna", MONDAY, 17 * 60)  # the end is not in it
    assert not fits(afternoon, "manicure", "anna", MONDAY, 11 * 60 + 30)
    morning = entry(4, minutes=(None, 12 * 60))
    assert fits(morning, "manicure", "anna", MONDAY, 10 * 60)
    assert not fits(morning, "manicure", "anna", MONDAY, 12 * 60)


def test_the_first_joined_are_picked_a_few_at_a_time_one_entry_per_customer() -> None:
    waiting = [
        entry(1, minutes=(None, 12 * 60)),  # mornings only: not at 15:00
        entry(2),
        entry(2, master="anna"),  # the same customer again: one offer is enough
        entry(3, service="pedicure"),  # a service that does not fit there
        entry(4, master="olga"),  # another master
        entry(5),
        entry(6),
        entry(7),
    ]
    chosen = pick(waiting, ["manicure"], "anna", MONDAY, 15 * 60, 3)
    assert [e.customer_id for e in chosen] == [2, 5, 6]
    both = pick(waiting, ["manicure", "pedicure"], "anna", MONDAY, 15 * 60, 10)
    assert [e.customer_id for e in both] == [2, 3, 5, 6, 7]
    assert pick(waiting, [], "anna", MONDAY, 15 * 60, 3) == []  # nothing fits there at all


# ---- over the database ----------------------------------------------------------------------------


def _with(business: Business, **settings: object) -> Business:
    return business.model_copy(update={"waitlist": Waitlist(**settings)})  # type: ignore[arg-type]


class World:
    def __init__(
        self, db: Database, clock: FixedClock, business: Business, staff: StaffService
    ) -> None:
        events = Events()
        self.db, self.clock, self.business = db, clock, business
        self.booking = BookingService(
            db, clock, business, MOSCOW, Renderer(MOSCOW), staff, admin_chat_id=-100
        )
        self.booking.events = events
        self.waitlist = WaitlistService(db, clock, business, MOSCOW, Renderer(MOSCOW), self.booking)
        events.on_slot_freed(self.waitlist.slot_freed)

    async def tg_of(self) -> dict[int, int]:
        """Customer id → their Telegram id (the tests name customers by the latter)."""
        async with self.db.transaction() as repos:
            return {
                c.id: c.tg_user_id
                for c in await repos.session.scalars(select(Customer))
                if c.tg_user_id is not None
            }

    async def customer(self, tg: int) -> int:
        customers = CustomerService(
            self.db, self.clock, self.business, MOSCOW, secret_key=b"test-secret-key"
        )
        view = await customers.consent(
            tg, name=f"Клиент {tg}", username=None, language="ru", source=None, offers=True
        )
        await customers.set_phone(tg, f"+7916{tg:07d}")
        await customers.finish_onboarding(tg)
        return view.id

    async def booked(self, tg: int, at: datetime) -> int:
        result = await self.booking.book(tg, "manicure", "anna", at, source="menu")
        assert result.outcome is BookOutcome.BOOKED and result.booking
        return result.booking.id

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with self.db.transaction() as repos:
            query = select(model).where(*where).order_by(model.id)
            return list(await repos.session.scalars(query))


def world(
    db: Database, clock: FixedClock, business: Business, staff: StaffService, **settings: object
) -> World:
    return World(db, clock, _with(business, **settings) if settings else business, staff)


async def test_joining_is_checked(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    w = world(db, clock, business, staff, max_entries=2)
    clock.set(moscow(MONDAY, "09:00"))
    await w.customer(11)
    join = w.waitlist.join
    assert (await join(99, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)).outcome is (
        JoinOutcome.NOT_CUSTOMER
    )
    bad_ones: list[tuple[str, str | None, date, date]] = [
        ("haircut", None, MONDAY, TUESDAY),  # no such service
        ("pedicure", "anna", MONDAY, TUESDAY),  # Анна does not do pedicure
        ("manicure", "nobody", MONDAY, TUESDAY),
        ("manicure", None, MONDAY - timedelta(days=1), TUESDAY),  # a day past
        ("manicure", None, TUESDAY, MONDAY),  # backwards
        ("manicure", None, MONDAY, MONDAY + timedelta(days=14)),  # beyond booking's two weeks
    ]
    for service, master, first, last in bad_ones:
        result = await join(11, service, master, first, last, DayPart.ANY)
        assert result.outcome is JoinOutcome.INVALID, (service, master, first, last)
    joined = await join(11, "manicure", "anna", MONDAY, TUESDAY, DayPart.AFTERNOON)
    assert joined.outcome is JoinOutcome.JOINED and joined.entry
    assert joined.entry.part is DayPart.AFTERNOON and joined.entry.master == "Анна"
    again = await join(11, "manicure", "anna", TUESDAY, TUESDAY, DayPart.AFTERNOON)
    assert again.outcome is JoinOutcome.ALREADY  # covered by the first one
    assert (await join(11, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)).outcome is (
        JoinOutcome.JOINED
    )
    assert (await join(11, "pedicure", None, MONDAY, TUESDAY, DayPart.ANY)).outcome is (
        JoinOutcome.TOO_MANY
    )
    assert [e.service_id for e in await w.waitlist.entries(11)] == ["manicure", "manicure"]
    off = world(db, clock, business, staff, enabled=False)
    assert (
        await off.waitlist.join(11, "pedicure", None, MONDAY, TUESDAY, DayPart.ANY)
    ).outcome is (JoinOutcome.OFF)


async def test_a_cancelled_time_is_offered_in_order_of_joining_then_to_the_next_ones(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    w = world(db, clock, business, staff, offer_at_once=2, answer_minutes=30)
    clock.set(moscow(MONDAY, "11:00"))
    for user in (11, 12, 13, 14, 15):
        await w.customer(user)
    visit = await w.booked(15, moscow(TUESDAY, "15:00"))
    for user, part in ((11, DayPart.MORNING), (12, DayPart.ANY), (13, DayPart.AFTERNOON)):
        await w.waitlist.join(user, "manicure", None, MONDAY, TUESDAY, part)
        clock.advance(timedelta(minutes=1))
    await w.waitlist.join(14, "manicure", "anna", TUESDAY, TUESDAY, DayPart.ANY)
    assert (await w.booking.cancel(15, visit)).outcome.value == "done"
    tg = await w.tg_of()
    offers = await w.rows(WaitlistOffer)
    # 11 waits for mornings; 12 and 13 joined before 14: two at a time
    assert [(tg[o.customer_id], o.state) for o in offers] == [(12, "offered"), (13, "offered")]
    assert offers[0].starts_at == moscow(TUESDAY, "15:00") and offers[0].offered_at == clock.now()
    sent = await w.rows(OutboxMessage, OutboxMessage.template == "waitlist_offer")
    assert [(tg[m.customer_id or 0], m.kind, m.data["offer_id"]) for m in sent] == [
        (12, "service", offers[0].id),
        (13, "service", offers[1].id),
    ]
    assert await w.waitlist.plan() == 0  # the round is not over yet
    clock.advance(timedelta(minutes=30))
    assert await w.waitlist.plan() == 1  # nobody took it: the next one
    assert [tg[o.customer_id] for o in await w.rows(WaitlistOffer)] == [12, 13, 14]
    clock.advance(timedelta(minutes=30))
    assert await w.waitlist.plan() == 0  # nobody else waits for it
    # an earlier offer is still good: 12 taps and books it; the others' offers are gone
    taken = await w.waitlist.take(12, offers[0].id)
    assert taken.outcome is TakeOutcome.BOOKED and taken.booking
    assert taken.booking.starts_at == moscow(TUESDAY, "15:00") and taken.booking.state == "pending"
    states = {tg[o.customer_id]: o.state for o in await w.rows(WaitlistOffer)}
    assert states == {12: "taken", 13: "gone", 14: "gone"}
    assert [tg[e.customer_id] for e in await w.rows(WaitlistEntry)] == [11, 13, 14]  # 12's done
    assert (await w.waitlist.take(13, offers[1].id)).outcome is TakeOutcome.GONE
    assert (await w.waitlist.take(13, offers[0].id)).outcome is TakeOutcome.NOT_YOURS


async def test_two_waiting_customers_tap_at_once_and_one_gets_the_time(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    w = world(db, clock, business, staff)
    clock.set(moscow(MONDAY, "11:00"))
    for user in (11, 12, 13):
        await w.customer(user)
    visit = await w.booked(13, moscow(TUESDAY, "12:00"))
    await w.waitlist.join(11, "manicure", None, TUESDAY, TUESDAY, DayPart.ANY)
    await w.waitlist.join(12, "manicure", "anna", MONDAY, TUESDAY, DayPart.ANY)
    await w.booking.cancel(13, visit)
    first, second = await w.rows(WaitlistOffer)
    results = await asyncio.gather(w.waitlist.take(11, first.id), w.waitlist.take(12, second.id))
    assert sorted(r.outcome.value for r in results) == ["booked", "gone"]
    winner = 11 if results[0].outcome is TakeOutcome.BOOKED else 12
    active = await w.rows(Booking, Booking.state == "pending")
    assert len(active) == 1 and active[0].starts_at == moscow(TUESDAY, "12:00")
    tg = await w.tg_of()
    assert [tg[e.customer_id] for e in await w.rows(WaitlistEntry)] == [23 - winner]  # still waits


@pytest.mark.parametrize(
    ("choice", "slot", "expected"),
    [
        ("send", "11:00", "now"),  # 11:00 is within 4 h of 10:00, the quiet hours' end
        ("skip", "11:00", None),  # ... so it is not offered at all
        ("send", "15:00", "morning"),  # 15:00 can wait for the morning
        ("skip", "15:00", "morning"),
    ],
)
async def test_quiet_hours_hold_an_offer_unless_the_time_is_soon(
    choice: str,
    slot: str,
    expected: str | None,
    db: Database,
    clock: FixedClock,
    business: Business,
    staff: StaffService,
) -> None:
    w = world(db, clock, business, staff, soon_in_quiet_hours=choice, soon_hours=4)
    clock.set(moscow(MONDAY, "12:00"))
    await w.customer(11)
    await w.customer(12)
    visit = await w.booked(12, moscow(TUESDAY, slot))
    await w.waitlist.join(11, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)
    clock.set(moscow(MONDAY, "23:30"))  # quiet hours: 21:00-10:00
    await w.booking.cancel(12, visit)
    rows = await w.rows(OutboxMessage, OutboxMessage.template == "waitlist_offer")
    if expected is None:
        assert rows == [] and await w.rows(WaitlistOffer) == []
        return
    (row,) = rows
    assert row.not_before == (clock.now() if expected == "now" else moscow(TUESDAY, "10:00")), (
        row.not_before
    )
    (offer,) = await w.rows(WaitlistOffer)
    assert offer.answer_by == row.not_before + timedelta(minutes=30)


async def test_a_time_booked_meanwhile_is_not_offered_and_ended_entries_go(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    w = world(db, clock, business, staff, answer_minutes=30)
    clock.set(moscow(MONDAY, "11:00"))
    for user in (11, 12, 13):
        await w.customer(user)
    visit = await w.booked(12, moscow(TUESDAY, "16:00"))
    await w.waitlist.join(11, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)
    await w.booking.cancel(12, visit)
    await w.booked(13, moscow(TUESDAY, "16:00"))  # through /book, before 11 tapped
    (offer,) = await w.rows(WaitlistOffer)
    assert (await w.waitlist.take(11, offer.id)).outcome is TakeOutcome.GONE
    assert [(await w.tg_of())[e.customer_id] for e in await w.rows(WaitlistEntry)] == [11]
    clock.set(moscow(TUESDAY, "23:59"))
    assert await w.waitlist.plan() == 0  # the last day is today still
    assert [e.id for e in await w.waitlist.entries(11)] != []
    clock.set(moscow(TUESDAY + timedelta(days=1), "00:01"))
    assert await w.waitlist.entries(11) == []  # not shown past its last day
    assert await w.waitlist.plan() == 1  # and dropped
    assert await w.rows(WaitlistEntry) == []
    assert [o.entry_id for o in await w.rows(WaitlistOffer)] == [None]  # the offer, unlinked


async def test_forget_erases_the_entries_and_offers_and_mydata_shows_them(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    w = world(db, clock, business, staff)
    events = w.booking.events
    events.on_erased(w.booking.cancel_for_erased)
    events.on_erased(w.waitlist.erase)
    customers = CustomerService(db, clock, business, MOSCOW, events, secret_key=b"test-secret-key")
    clock.set(moscow(MONDAY, "11:00"))
    await w.customer(11)
    await w.customer(12)
    await w.booked(12, moscow(TUESDAY, "15:00"))
    await w.waitlist.join(11, "manicure", None, TUESDAY, TUESDAY, DayPart.EVENING)
    await w.waitlist.join(11, "manicure", "anna", TUESDAY, TUESDAY, DayPart.AFTERNOON)
    await w.waitlist.join(12, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)
    assert await customers.forget(12)  # her visit's time frees as she goes: not offered to her
    tg = await w.tg_of()
    assert [tg[o.customer_id] for o in await w.rows(WaitlistOffer)] == [11]
    assert [tg[e.customer_id] for e in await w.rows(WaitlistEntry)] == [11, 11]
    mine = await Exporter(db, clock, business, MOSCOW).my_data(11)
    assert mine is not None
    document = json.loads(mine.document)
    assert [(e["master"], e["from_minute"], e["to_minute"]) for e in document["waitlist"]] == [
        (None, 17 * 60, None),
        ({"id": "anna", "name": "Анна"}, 12 * 60, 17 * 60),
    ]
    (offer,) = document["waitlist_offers"]
    assert offer["state"] == "offered" and offer["service"]["name"] == "Маникюр с покрытием"
    assert await customers.forget(11)
    assert await w.rows(WaitlistEntry) == [] and await w.rows(WaitlistOffer) == []


async def test_someone_booked_for_that_service_already_is_not_offered_it(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> None:
    w = world(db, clock, business, staff)
    clock.set(moscow(MONDAY, "11:00"))
    for user in (11, 12, 13):
        await w.customer(user)
    await w.waitlist.join(11, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)
    await w.waitlist.join(12, "manicure", None, MONDAY, TUESDAY, DayPart.ANY)
    await w.booked(11, moscow(TUESDAY, "17:00"))  # 11 found a time meanwhile
    visit = await w.booked(13, moscow(TUESDAY, "12:00"))
    await w.booking.cancel(13, visit)
    tg = await w.tg_of()
    assert [tg[o.customer_id] for o in await w.rows(WaitlistOffer)] == [12]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('soon_in_quiet_hours = "later"', "waitlist.soon_in_quiet_hours"),
        ("offer_at_once = 0", "waitlist.offer_at_once"),
        ("answer_minutes = 1", "waitlist.answer_minutes"),
        ("soon_hours = -1", "waitlist.soon_hours"),
        ("enabled = 3", "waitlist.enabled"),
        ("offer_now = 2", "waitlist.offer_now"),
    ],
)
def test_the_business_file_checks_the_waitlist(line: str, field: str, tmp_path: Path) -> None:
    path = tmp_path / "business.toml"
    path.write_text(BUSINESS_FILE.read_text() + f"\n[waitlist]\n{line}\n")
    with pytest.raises(ConfigError, match=f"field {field}"):
        load_business(path)
    path.write_text(BUSINESS_FILE.read_text() + '\n[waitlist]\nsoon_in_quiet_hours = "skip"\n')
    assert load_business(path).waitlist.soon_in_quiet_hours == "skip"
