"""Booking and cycles without Telegram: free slots, cycle learning, the due-offer planner,
the booking race, the master's answer and the visit's end."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Booking, BookingCell, Cycle, OutboxMessage, Purchase
from bot.db.repositories import Database
from bot.events import Events
from bot.rendering import Renderer
from bot.services.booking import Actor, ActOutcome, BookingService, BookOutcome
from bot.services.customers import CustomerService
from bot.services.cycles import CycleService, learned_interval
from bot.services.slots import SlotFinder, cells
from bot.services.staff import Staff, StaffService

MOSCOW = ZoneInfo("Europe/Moscow")
MONDAY = date(
    2026, 11, 30
)  # Анна works 10-19 with a break 14:00-14:30; Ольга does not work on Mondays
OLGA_STAFF = Staff(1, "Ольга (админ)")


def moscow(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=MOSCOW).astimezone(UTC)


def hhmm(moments: list[datetime]) -> list[str]:
    return [m.astimezone(MOSCOW).strftime("%H:%M") for m in moments]


# ---- slots ------------------------------------------------------------------------------------


def test_starts_follow_hours_breaks_and_the_grid(business: Business) -> None:
    finder = SlotFinder(business, MOSCOW)
    anna, manicure = business.master("anna"), business.service("manicure")
    assert anna and manicure
    assert hhmm(finder.starts(anna, manicure, MONDAY)) == [
        "10:00",
        "10:30",
        "11:00",
        "11:30",
        "12:00",
        "12:30",  # 12:30 ends at 14:00, the break's start
        "14:30",
        "15:00",
        "15:30",
        "16:00",
        "16:30",
        "17:00",
        "17:30",
    ]  # 17:30 ends at 19:00
    assert finder.starts(anna, manicure, MONDAY + timedelta(days=6)) == []  # Sunday: Анна is off
    assert finder.is_start(anna, manicure, moscow(MONDAY, "12:30"))
    assert not finder.is_start(anna, manicure, moscow(MONDAY, "12:45"))  # off the grid
    assert not finder.is_start(anna, manicure, moscow(MONDAY, "13:30"))  # runs into the break
    assert not finder.is_start(anna, manicure, moscow(MONDAY, "18:00"))  # ends after closing


def test_bookings_days_off_and_notice_take_slots_away(business: Business) -> None:
    finder = SlotFinder(business, MOSCOW)
    anna, manicure = business.master("anna"), business.service("manicure")
    assert anna and manicure
    now = moscow(MONDAY, "09:00")
    held = set(cells(moscow(MONDAY, "11:00"), manicure.duration_minutes, 30))
    assert hhmm(sorted(held)) == ["11:00", "11:30", "12:00"]
    free = finder.free(anna, manicure, MONDAY, held=held, days_off=(), now=now)
    assert hhmm([s.starts_at for s in free])[:3] == ["12:30", "14:30", "15:00"]
    assert finder.free(anna, manicure, MONDAY, held=(), days_off={MONDAY}, now=now) == []
    late = finder.free(anna, manicure, MONDAY, held=(), days_off=(), now=moscow(MONDAY, "16:10"))
    assert hhmm([s.starts_at for s in late]) == ["17:30"]  # at least an hour's notice


def test_a_visit_holds_every_cell_it_covers() -> None:
    start = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert len(cells(start, 90, 30)) == 3
    assert len(cells(start, 45, 30)) == 2  # a 45-minute visit still blocks the next half hour
    assert len(cells(start, 30, 30)) == 1


# ---- cycles -----------------------------------------------------------------------------------


def _visits(*gaps: int) -> list[datetime]:
    """Visits newest first, with these gaps in days between them (oldest gap last)."""
    moments = [datetime(2026, 11, 23, tzinfo=UTC)]
    for gap in gaps:
        moments.append(moments[-1] - timedelta(days=gap))
    return moments


def test_the_cycle_is_the_median_of_the_customers_own_intervals() -> None:
    assert learned_interval(_visits(), 21) == (21, False)
    assert learned_interval(_visits(30), 21) == (21, False)  # one interval is not a habit yet
    assert learned_interval(_visits(18, 20), 21) == (19, True)
    assert learned_interval(_visits(18, 60, 19), 21) == (19, True)  # one long gap does not move it
    assert learned_interval(_visits(0, 18, 20), 21) == (
        19,
        True,
    )  # two sales on one visit are one visit


@pytest.mark.parametrize(("cycle", "lead_days"), [(21, 3.5), (30, 5), (60, 5), (12, 3), (4, 2)])
def test_the_offer_comes_at_five_sixths_but_three_to_five_days_ahead(
    cycle: float, lead_days: float, db: Database, clock: FixedClock, business: Business
) -> None:
    cycles = CycleService(db, clock, business, MOSCOW, None)  # type: ignore[arg-type]
    assert cycles.lead(cycle) == timedelta(days=lead_days)


# ---- services over the database ---------------------------------------------------------------


@pytest.fixture
def booking(
    db: Database, clock: FixedClock, business: Business, staff: StaffService
) -> BookingService:
    return BookingService(db, clock, business, MOSCOW, Renderer(MOSCOW), staff, admin_chat_id=-100)


@pytest.fixture
def cycles(
    db: Database, clock: FixedClock, business: Business, booking: BookingService, events: Events
) -> CycleService:
    service = CycleService(db, clock, business, MOSCOW, booking)
    events.on_purchase(service.learn_after_purchase)
    return service


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(
        tg, name=f"Клиент {tg}", username=None, language="ru", source=None, offers=True
    )
    await customers.set_phone(tg, f"+7916{tg:07d}")
    await customers.finish_onboarding(tg)
    return view.id


async def _outbox(db: Database, prefix: str) -> list[OutboxMessage]:
    async with db.transaction() as repos:
        return list(
            await repos.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.key.startswith(prefix))
                .order_by(OutboxMessage.id)
            )
        )


async def test_two_customers_tapping_one_slot_get_one_booking(
    db: Database, clock: FixedClock, business: Business, booking: BookingService
) -> None:
    """Ten customers tap the same time (and overlapping times) at the same instant."""
    clock.set(moscow(MONDAY, "09:00"))
    for tg in range(11, 21):
        await _customer(db, clock, business, tg)
    starts = (
        [moscow(MONDAY, "10:00")] * 5
        + [moscow(MONDAY, "10:30"), moscow(MONDAY, "11:00")] * 2
        + [moscow(MONDAY, "09:30")]
    )  # 09:30 is before opening: not a slot at all
    results = await asyncio.gather(
        *(
            booking.book(tg, "manicure", "anna", at, source="menu")
            for tg, at in zip(range(11, 21), starts, strict=True)
        )
    )
    outcomes = [r.outcome for r in results]
    assert (
        outcomes.count(BookOutcome.BOOKED) == 1
    )  # 10:00, 10:30 and 11:00 all overlap a 90-minute visit
    assert outcomes.count(BookOutcome.TAKEN) == 8 and outcomes[-1] is BookOutcome.INVALID
    async with db.transaction() as repos:
        assert len(list(await repos.session.scalars(select(Booking)))) == 1
        assert len(list(await repos.session.scalars(select(BookingCell)))) == 3


async def test_booking_checks(
    db: Database, clock: FixedClock, business: Business, booking: BookingService
) -> None:
    clock.set(moscow(MONDAY, "09:30"))
    await _customer(db, clock, business, 11)
    assert (
        await booking.book(11, "manicure", "anna", moscow(MONDAY, "10:00"), source="menu")
    ).outcome is BookOutcome.TOO_LATE  # less than an hour's notice
    assert (
        await booking.book(11, "pedicure", "anna", moscow(MONDAY, "12:00"), source="menu")
    ).outcome is BookOutcome.INVALID  # Анна does not do pedicure
    assert (
        await booking.book(11, "manicure", "nobody", moscow(MONDAY, "12:00"), source="menu")
    ).outcome is BookOutcome.INVALID
    assert (
        await booking.book(99, "manicure", "anna", moscow(MONDAY, "12:00"), source="menu")
    ).outcome is BookOutcome.NOT_CUSTOMER
    first = await booking.book(11, "manicure", "anna", moscow(MONDAY, "12:00"), source="menu")
    assert first.outcome is BookOutcome.BOOKED and first.booking
    second = await booking.book(11, "manicure", "anna", moscow(MONDAY, "16:00"), source="menu")
    assert (
        second.outcome is BookOutcome.ALREADY
        and second.booking
        and second.booking.id == first.booking.id
    )
    await booking.day_off("anna", MONDAY + timedelta(days=1), "Анна")
    assert (
        await booking.book(
            11,
            "manicure",
            "anna",
            moscow(MONDAY + timedelta(days=1), "12:00"),
            source="menu",
            replaces=first.booking.id,
        )
    ).outcome is BookOutcome.TAKEN


async def test_the_master_answers_and_only_their_master(
    db: Database, clock: FixedClock, business: Business, booking: BookingService
) -> None:
    clock.set(moscow(MONDAY, "09:00"))
    await _customer(db, clock, business, 11)
    token = await booking.invite("anna", "owner")
    assert (await booking.join(501, token)) is not None
    assert (await booking.join(502, token)) is None  # one use
    made = await booking.book(
        11, "manicure", "anna", moscow(MONDAY + timedelta(days=2), "12:00"), source="menu"
    )
    assert made.booking is not None
    request = await _outbox(db, "booking_request:")
    assert [(r.chat_id, r.markup is not None) for r in request] == [(501, True)]
    assert (
        await booking.decide(made.booking.id, Actor(502, "Ольга"), accept=True)
    ).outcome is ActOutcome.NOT_YOURS
    assert (
        await booking.decide(made.booking.id, Actor(11, "клиент"), accept=True)
    ).outcome is ActOutcome.NOT_YOURS
    accepted = await booking.decide(made.booking.id, Actor(501, "Анна"), accept=True)
    assert (
        accepted.outcome is ActOutcome.DONE
        and accepted.booking
        and accepted.booking.state == "confirmed"
    )
    again = await booking.decide(made.booking.id, Actor(-100, "admin", staff=True), accept=False)
    assert again.outcome is ActOutcome.ALREADY
    assert [r.key for r in await _outbox(db, "reminder:")] == [
        f"reminder:{made.booking.id}:24h",
        f"reminder:{made.booking.id}:2h",
    ]
    assert [r.customer_id for r in await _outbox(db, "booking_confirmed:")] == [
        made.booking.customer_id
    ]


async def test_a_decline_or_a_cancel_frees_the_slot(
    db: Database, clock: FixedClock, business: Business, booking: BookingService
) -> None:
    clock.set(moscow(MONDAY, "09:00"))
    await _customer(db, clock, business, 11)
    await _customer(db, clock, business, 12)
    at = moscow(MONDAY, "15:00")
    made = await booking.book(11, "manicure", "anna", at, source="menu")
    assert made.booking
    assert (
        await booking.book(12, "manicure", "anna", at, source="menu")
    ).outcome is BookOutcome.TAKEN
    await booking.decide(
        made.booking.id, Actor(-100, "admin", staff=True), accept=False, reason="болею"
    )
    again = await booking.book(12, "manicure", "anna", at, source="menu")
    assert again.outcome is BookOutcome.BOOKED and again.booking
    await booking.decide(again.booking.id, Actor(-100, "admin", staff=True), accept=True)
    assert (
        await booking.cancel(11, again.booking.id)
    ).outcome is ActOutcome.NOT_YOURS  # someone else's visit
    assert (await booking.cancel(12, again.booking.id)).outcome is ActOutcome.DONE
    assert {r.state for r in await _outbox(db, f"reminder:{again.booking.id}:")} == {"skipped"}
    assert [r.chat_id for r in await _outbox(db, "booking_cancelled:")] == [-100]
    assert (
        await booking.book(11, "manicure", "anna", at, source="menu")
    ).outcome is BookOutcome.BOOKED


async def test_an_unanswered_request_is_escalated_after_two_working_hours(
    db: Database, clock: FixedClock, business: Business, booking: BookingService
) -> None:
    clock.set(
        moscow(MONDAY, "18:00")
    )  # an hour before Анна's day ends: the rest counts from Tuesday 10:00
    await _customer(db, clock, business, 11)
    made = await booking.book(
        11, "manicure", "anna", moscow(MONDAY + timedelta(days=3), "12:00"), source="menu"
    )
    assert made.booking
    clock.set(moscow(MONDAY + timedelta(days=1), "10:55"))
    assert await booking.escalate_unanswered() == 0
    clock.set(moscow(MONDAY + timedelta(days=1), "11:00"))
    assert await booking.escalate_unanswered() == 1
    assert await booking.escalate_unanswered() == 0
    assert [(r.chat_id, r.template) for r in await _outbox(db, "booking_escalated:")] == [
        (-100, "booking_escalated")
    ]


async def test_done_records_the_sale_and_the_cycle_learns(
    db: Database,
    clock: FixedClock,
    business: Business,
    booking: BookingService,
    cycles: CycleService,
) -> None:
    clock.set(moscow(MONDAY, "09:00"))
    customer_id = await _customer(db, clock, business, 11)
    made = await booking.book(
        11, "manicure", "anna", moscow(MONDAY + timedelta(days=1), "12:00"), source="menu"
    )
    assert made.booking
    staff_actor = Actor(-100, "admin", staff=True)
    assert (
        await booking.close(made.booking.id, staff_actor, done=True)
    ).outcome is ActOutcome.TOO_EARLY
    await booking.decide(made.booking.id, staff_actor, accept=True)
    clock.set(moscow(MONDAY + timedelta(days=1), "13:30"))
    closed = await booking.close(made.booking.id, staff_actor, done=True)
    assert closed.outcome is ActOutcome.DONE and closed.booking and closed.booking.state == "done"
    assert (
        await booking.close(made.booking.id, staff_actor, done=False)
    ).outcome is ActOutcome.ALREADY
    async with db.transaction() as repos:
        purchases = list(await repos.session.scalars(select(Purchase)))
        assert [(p.amount_minor, p.service_id, p.master_id) for p in purchases] == [
            (200000, "manicure", "anna")
        ]
        cycle = await repos.session.get(Cycle, (customer_id, "manicure"))
        assert (
            cycle and cycle.interval_days == 21 and not cycle.learned and cycle.master_id == "anna"
        )
        assert cycle.due_at == purchases[0].at + timedelta(days=21)


async def test_the_due_offer_comes_once_per_cycle_and_stops_after_two_ignored(
    db: Database, clock: FixedClock, business: Business, staff: StaffService, cycles: CycleService
) -> None:
    customer_id = await _customer(db, clock, business, 11)
    start = moscow(date(2026, 10, 1), "12:00")
    for gap in (0, 20, 20):  # visits on 1.10, 21.10, 10.11: their cycle is 20 days
        clock.set(start := start + timedelta(days=gap))
        await staff.record_sale(OLGA_STAFF, customer_id, 200000, "manicure", "olga")
    async with db.transaction() as repos:
        cycle = await repos.session.get(Cycle, (customer_id, "manicure"))
        assert cycle and cycle.learned and cycle.interval_days == 20
        due, offer_at = cycle.due_at, cycle.offer_at
    assert due == start + timedelta(days=20) and offer_at == due - timedelta(days=10 / 3)

    clock.set(offer_at - timedelta(hours=1))
    assert await cycles.plan_due_offers() == 0
    clock.set(offer_at + timedelta(minutes=5))
    assert await cycles.plan_due_offers() == 1
    assert await cycles.plan_due_offers() == 0  # not twice
    first = await _outbox(db, "due_offer:")
    assert [(r.kind, r.data) for r in first] == [
        ("marketing", {"service": "manicure", "master": "olga"})
    ]

    clock.set(
        due + timedelta(hours=1)
    )  # the due date passed: ignored once, the next cycle is planned
    assert await cycles.plan_due_offers() == 0
    clock.set(due + timedelta(days=20) - timedelta(days=3))
    assert await cycles.plan_due_offers() == 1
    clock.set(
        due + timedelta(days=20, hours=1)
    )  # ignored twice: left for the reactivation campaign
    assert await cycles.plan_due_offers() == 0
    async with db.transaction() as repos:
        cycle = await repos.session.get(Cycle, (customer_id, "manicure"))
        assert cycle and cycle.ignored == 2 and cycle.due_at is None
    clock.set(due + timedelta(days=57))
    assert await cycles.plan_due_offers() == 0
    assert len(await _outbox(db, "due_offer:")) == 2


async def test_not_now_waits_a_cycle_and_a_booking_stops_the_offer(
    db: Database,
    clock: FixedClock,
    business: Business,
    staff: StaffService,
    cycles: CycleService,
    booking: BookingService,
) -> None:
    customer_id = await _customer(db, clock, business, 11)
    clock.set(moscow(date(2026, 11, 2), "12:00"))
    await staff.record_sale(
        OLGA_STAFF, customer_id, 200000, "manicure", "anna"
    )  # due 23.11 (21 days)
    assert await cycles.postpone(11, "manicure", 1) is None  # not the current offer
    later = await cycles.postpone(11, "manicure", 0)
    assert later == moscow(date(2026, 12, 14), "12:00")
    assert await cycles.postpone(11, "manicure", 0) is None  # a second tap
    clock.set(moscow(date(2026, 11, 20), "12:00"))
    assert await cycles.plan_due_offers() == 0  # postponed: nothing this cycle
    clock.set(moscow(date(2026, 12, 10), "12:00"))
    made = await booking.book(
        11, "manicure", "anna", moscow(date(2026, 12, 14), "12:00"), source="menu"
    )
    assert made.outcome is BookOutcome.BOOKED
    assert await cycles.plan_due_offers() == 0  # already booked


async def test_the_card_shows_the_next_visit_and_no_shows_and_forget_cancels_visits(
    db: Database,
    clock: FixedClock,
    business: Business,
    booking: BookingService,
    cycles: CycleService,
    staff: StaffService,
    events: Events,
) -> None:
    events.on_erased(booking.cancel_for_erased)
    events.on_erased(cycles.forget)
    customers = CustomerService(db, clock, business, MOSCOW, events, secret_key=b"test-secret-key")
    clock.set(moscow(MONDAY, "09:00"))
    customer_id = await _customer(db, clock, business, 11)
    admin = Actor(-100, "admin", staff=True)
    first = await booking.book(11, "manicure", "anna", moscow(MONDAY, "10:00"), source="menu")
    assert first.booking
    clock.set(moscow(MONDAY, "12:00"))
    assert (await booking.close(first.booking.id, admin, done=False)).outcome is ActOutcome.DONE
    await staff.record_sale(OLGA_STAFF, customer_id, 200000, "manicure", "anna")
    second = await booking.book(
        11, "manicure", "anna", moscow(MONDAY + timedelta(days=1), "15:00"), source="menu"
    )
    assert second.booking
    card = await staff.card(customer_id)
    assert (
        card
        and card.no_shows == 1
        and card.next_visit == moscow(MONDAY + timedelta(days=1), "15:00")
    )

    assert await customers.forget(11)
    async with db.transaction() as repos:
        assert (await repos.bookings.get(second.booking.id)).state == "cancelled"  # type: ignore[union-attr]
        assert not list(
            await repos.session.scalars(
                select(BookingCell).where(BookingCell.booking_id == second.booking.id)
            )
        )
        assert await repos.session.get(Cycle, (customer_id, "manicure")) is None
    assert [r.template for r in await _outbox(db, "booking_cancelled:")] == [
        "booking_cancelled_staff"
    ]


async def test_skipping_one_visits_messages_leaves_another_visits_alone(
    db: Database, clock: FixedClock
) -> None:
    """Visit 1's keys are not a prefix of visit 12's."""
    now = clock.now()
    async with db.transaction() as repos:
        for key in ("booking_request:1", "booking_request:12", "reminder:1:24h", "reminder:12:24h"):
            await repos.outbox.queue(
                key=key,
                kind="service",
                template="booking_request",
                chat_id=5,
                not_before=now,
                not_after=now + timedelta(days=1),
                now=now,
            )
        await repos.outbox.skip_pending(
            "cancelled", keys=["booking_request:1"], prefix="reminder:1:"
        )
    states = {r.key: r.state for r in await _outbox(db, "")}
    assert states == {
        "booking_request:1": "skipped",
        "booking_request:12": "pending",
        "reminder:1:24h": "skipped",
        "reminder:12:24h": "pending",
    }
