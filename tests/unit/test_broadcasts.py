"""Broadcasts and sleeping customers without Telegram: segment counts against a seeded base,
queueing once, cancelling, reactivation and its figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Broadcast, OutboxError, OutboxMessage
from bot.db.repositories import Database
from bot.events import Events
from bot.rendering import Renderer
from bot.services.birthdays import Birthday
from bot.services.booking import BookingService
from bot.services.broadcasts import BroadcastService
from bot.services.customers import CustomerService
from bot.services.cycles import CycleService
from bot.services.segments import Condition
from bot.services.sleeping import SleepingService
from bot.services.staff import Staff, StaffService

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
OWNER = Staff(1, "Ольга")


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=MOSCOW)


@pytest.fixture
def customers(db: Database, clock: FixedClock, business: Business) -> CustomerService:
    return CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")


@pytest.fixture
def booking(
    db: Database, clock: FixedClock, business: Business, staff: StaffService, events: Events
) -> BookingService:
    service = BookingService(
        db, clock, business, MOSCOW, Renderer(MOSCOW), staff, admin_chat_id=-100
    )
    events.on_purchase(CycleService(db, clock, business, MOSCOW, service).learn_after_purchase)
    return service


@pytest.fixture
def broadcasts(db: Database, clock: FixedClock, business: Business) -> BroadcastService:
    return BroadcastService(db, clock, business, MOSCOW, Renderer(MOSCOW), admin_chat_id=-100)


@pytest.fixture
def sleeping(db: Database, clock: FixedClock, business: Business) -> SleepingService:
    return SleepingService(db, clock, business, MOSCOW, Renderer(MOSCOW))


async def _customer(
    customers: CustomerService, tg: int, *, birthday: Birthday | None = None, finish: bool = True
) -> int:
    view = await customers.consent(
        tg, name=f"Клиент {tg}", username=None, language="ru", source=None, offers=True
    )
    await customers.set_phone(tg, f"+7916{tg:07d}")
    await customers.set_birthday(tg, birthday)
    if finish:
        await customers.finish_onboarding(tg)
    return view.id


async def _visits(
    staff: StaffService, clock: FixedClock, customer_id: int, service: str, master: str, *days: date
) -> None:
    for day in days:
        clock.set(noon(day))
        await staff.record_sale(OWNER, customer_id, 200000, service, master)


@pytest.fixture
async def base(
    customers: CustomerService, staff: StaffService, clock: FixedClock, booking: BookingService
) -> dict[str, int]:
    """Six customers whose segments are worked out by hand below."""
    ids = {
        "new": await _customer(customers, 11),
        "regular": await _customer(customers, 12),
        "asleep": await _customer(customers, 13),
        "birthday": await _customer(customers, 14, birthday=Birthday(14, 11, 1990)),
        "opted_out": await _customer(customers, 15),
        "unfinished": await _customer(customers, 16, finish=False),
    }
    await _visits(staff, clock, ids["new"], "manicure", "anna", date(2026, 11, 1))
    await _visits(
        staff,
        clock,
        ids["regular"],
        "pedicure",
        "olga",
        date(2026, 8, 1),
        date(2026, 9, 1),
        date(2026, 10, 1),
    )
    await _visits(
        staff, clock, ids["asleep"], "manicure", "olga", date(2026, 6, 1), date(2026, 6, 22)
    )
    await _visits(staff, clock, ids["opted_out"], "manicure", "anna", date(2026, 11, 2))
    await customers.set_marketing(15, False)
    clock.set(NOW)
    return ids


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (
            [],
            4,
        ),  # everyone who may get offers: not the opted-out one, not the one who never finished
        ([Condition("all")], 4),
        ([Condition("new")], 1),
        ([Condition("regular")], 1),
        ([Condition("service", "manicure")], 2),
        ([Condition("master", "olga")], 2),
        (
            [Condition("visited_before", "2026-10-01")],
            1,
        ),  # the one last seen in June; 1 October at noon is not before
        ([Condition("visited_after", "2026-10-01")], 2),
        ([Condition("birthday_month")], 1),
        (
            [Condition("sleeping")],
            1,
        ),  # June + 2 × 21 days passed; the regular's 30.5-day rhythm has not
        ([Condition("service", "manicure"), Condition("master", "olga")], 1),
        ([Condition("new"), Condition("sleeping")], 0),
    ],
)
async def test_segment_counts(
    base: dict[str, int], broadcasts: BroadcastService, conditions: list[Condition], expected: int
) -> None:
    assert await broadcasts.count(conditions) == expected


async def test_an_unknown_condition_is_refused(
    base: dict[str, int], broadcasts: BroadcastService
) -> None:
    for bad in (
        Condition("service", "haircut"),
        Condition("master", "nobody"),
        Condition("everyone"),
    ):
        with pytest.raises(ValueError):
            await broadcasts.count([bad])


async def _rows(db: Database, broadcast_id: int) -> list[OutboxMessage]:
    async with db.transaction() as repos:
        return list(
            await repos.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.key.startswith(f"broadcast:{broadcast_id}:"))
                .order_by(OutboxMessage.customer_id)
            )
        )


async def test_a_broadcast_is_queued_once_whatever_happens(
    base: dict[str, int], broadcasts: BroadcastService, db: Database, clock: FixedClock
) -> None:
    broadcast_id = await broadcasts.create(
        by="Ольга",
        content={"kind": "photo", "file_id": "photo-9", "html": "<b>Скидки</b>"},
        buttons=[],
        coupon={"percent": 10, "last_day": "2026-12-31"},
        conditions=[Condition("service", "manicure")],
        starts_at=NOW + timedelta(hours=1),
    )
    assert await broadcasts.queue_due() == 0  # not yet
    clock.set(NOW + timedelta(hours=1))
    assert await broadcasts.queue_due() == 2
    assert await broadcasts.queue_due() == 0
    async with db.transaction() as repos:  # as if a second process, or a restart, queued it again
        await repos.session.execute(update(Broadcast).values(state="scheduled"))
    assert await broadcasts.queue_due() == 0
    rows = await _rows(db, broadcast_id)
    assert [r.customer_id for r in rows] == [base["new"], base["asleep"]]
    assert rows[0].kind == "marketing" and rows[0].data["media"] == {
        "kind": "photo",
        "file_id": "photo-9",
    }
    assert rows[0].data["coupon"] == {
        "kind": "broadcast",
        "percent": 10,
        "amount": None,
        "last_day": "2026-12-31",
    }


async def test_cancelling_skips_what_waits_and_tells_the_sender(
    base: dict[str, int], broadcasts: BroadcastService, db: Database
) -> None:
    broadcast_id = await broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Привет"},
        buttons=[],
        coupon=None,
        conditions=[],
        starts_at=None,
    )
    assert await broadcasts.queue_due() == 4
    assert await broadcasts.cancel(broadcast_id, "Миша")
    assert not await broadcasts.cancel(broadcast_id, "Миша")
    assert {r.state for r in await _rows(db, broadcast_id)} == {"skipped"}
    assert f"broadcast:{broadcast_id}:" in broadcasts.cancelled
    progress = await broadcasts.progress(broadcast_id)
    assert (
        progress
        and progress.state == "cancelled"
        and progress.skipped == 4
        and not progress.waiting
    )


async def test_sleeping_customers_get_two_messages_then_peace(
    base: dict[str, int],
    sleeping: SleepingService,
    staff: StaffService,
    db: Database,
    clock: FixedClock,
) -> None:
    assert await sleeping.plan() == 1
    assert await sleeping.plan() == 0  # once per sleep
    async with db.transaction() as repos:
        first = (
            await repos.session.scalars(
                select(OutboxMessage).where(OutboxMessage.key.startswith("reactivation:"))
            )
        ).one()
        assert first.customer_id == base["asleep"] and first.template == "reactivation"
        assert first.data["coupon"]["valid_days"] == 10
        first.state, first.sent_at = "sent", NOW
    clock.set(NOW + timedelta(days=6))
    assert await sleeping.plan() == 0
    clock.set(NOW + timedelta(days=7))
    assert await sleeping.plan() == 1  # still asleep a week later: the second, different message
    stats = await sleeping.stats()
    assert (stats.asleep, stats.contacted, stats.woke, stats.share) == (1, 1, 0, 0.0)
    clock.set(
        NOW + timedelta(days=60)
    )  # the new and the regular customer have fallen asleep by now
    assert await sleeping.plan() == 2
    async with db.transaction() as repos:
        keys = list(
            await repos.session.scalars(
                select(OutboxMessage.key).where(
                    OutboxMessage.customer_id == base["asleep"],
                    OutboxMessage.key.startswith("reactivation:"),
                )
            )
        )
    assert len(keys) == 2  # the first sleeper is left alone after the second message


async def test_a_customer_who_comes_back_within_the_offer_woke_up(
    base: dict[str, int],
    sleeping: SleepingService,
    staff: StaffService,
    db: Database,
    clock: FixedClock,
) -> None:
    assert await sleeping.plan() == 1
    async with db.transaction() as repos:
        await repos.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key.startswith("reactivation:"))
            .values(state="sent", sent_at=NOW)
        )
    clock.set(NOW + timedelta(days=4))
    await staff.record_sale(OWNER, base["asleep"], 200000, "manicure", "olga")
    stats = await sleeping.stats()
    assert (stats.asleep, stats.contacted, stats.woke, stats.share) == (0, 1, 1, 100.0)
    clock.set(NOW + timedelta(days=11))
    await sleeping.plan()
    async with db.transaction() as repos:
        keys = list(
            await repos.session.scalars(
                select(OutboxMessage.key).where(
                    OutboxMessage.customer_id == base["asleep"],
                    OutboxMessage.key.startswith("reactivation:"),
                )
            )
        )
    assert len(keys) == 1  # awake: no second message


async def test_progress_tells_a_block_by_its_code_not_its_words(
    base: dict[str, int], broadcasts: BroadcastService, db: Database
) -> None:
    """A block is what the sender coded as one, whatever the words (a deliverer's own, or a
    Bot API that words its 403 otherwise); a failure whose words begin with "403" is not one."""
    broadcast_id = await broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Привет"},
        buttons=[],
        coupon=None,
        conditions=[],
        starts_at=None,
    )
    assert await broadcasts.queue_due() == 4
    outcomes = [
        ("failed", "Forbidden: bot was blocked by the user", OutboxError.BLOCKED),
        ("skipped", "customer blocked the bot", OutboxError.BLOCKED),
        ("failed", "403 and something else entirely", OutboxError.REFUSED),
        ("sent", None, None),
    ]
    rows = await _rows(db, broadcast_id)
    async with db.transaction() as repos:
        for row, (state, error, code) in zip(rows, outcomes, strict=True):
            await repos.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(state=state, last_error=error, error_code=code)
            )
    progress = await broadcasts.progress(broadcast_id)
    assert progress and (progress.blocked, progress.failed, progress.sent, progress.waiting) == (
        2,
        1,
        1,
        0,
    )
