"""The campaign report's closed days (`campaign_days`): the planner closes the days whose window
has passed, 30 a run, oldest first, with the live statement's own rules, so a period summed from
them plus the live rest equals the live count of the whole period; an import of old visits
reopens the days it may change; the unit is the assignment per local day."""

from __future__ import annotations

import io
import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from bot.business import Business, Campaigns
from bot.clock import FixedClock
from bot.db.models import (
    CampaignDay,
    Coupon,
    Customer,
    OutboxError,
    OutboxKind,
    OutboxMessage,
    OutboxState,
    Purchase,
)
from bot.db.repositories import Database
from bot.events import Events
from bot.features import Features
from bot.outbox.planners import Planners
from bot.services.campaign_results import CLOSE_PER_RUN, CampaignResultsService
from bot.services.importing import ImportService, Kind
from bot.services.stats import Period

BERLIN = ZoneInfo("Europe/Berlin")  # a DST change on 29 March: a 23-hour day
NOW = datetime(2026, 6, 20, 9, 0, tzinfo=BERLIN)
CAMPAIGNS = ("reactivation", "birthday", "broadcast:3")


def service(db: Database, clock: FixedClock | None = None) -> CampaignResultsService:
    return CampaignResultsService(db, clock or FixedClock(NOW), Campaigns(window_days=30), BERLIN)


async def seed(db: Database, customers: int = 80) -> None:
    """January to mid-June: each customer gets a few campaign rows (some twice the same day,
    some the same campaign on other days), a coupon on some (some used), purchases at random
    times, and some a welcome coupon."""
    rng = random.Random(16)
    start = datetime(2026, 1, 1, tzinfo=BERLIN)
    span = (NOW - start).total_seconds()

    def moment() -> datetime:
        return start + timedelta(seconds=span * rng.random())

    rows: list[dict[str, object]] = []
    coupons: list[dict[str, object]] = []
    purchases: list[dict[str, object]] = []
    async with db.transaction() as repos:
        await repos.session.execute(
            insert(Customer),
            [
                dict(id=i, tg_user_id=50_000 + i, name=f"К{i}", created_at=start)
                for i in range(1, customers + 1)
            ],
        )
        for n in range(1, 601):
            customer, campaign = rng.randint(1, customers), rng.choice(CAMPAIGNS)
            at = moment()
            arm = rng.choice(("a", "a", "b", "holdout"))
            coupon_id = None
            if arm != "holdout" and rng.random() < 0.4:
                coupon_id = len(coupons) + 1
                used = at + timedelta(days=2) if rng.random() < 0.5 else None
                coupons.append(_coupon(coupon_id, customer, "gift", at, used))
            held = arm == "holdout"
            for again in range(2 if rng.random() < 0.1 else 1):  # twice the same day: once
                rows.append(
                    dict(
                        key=f"{campaign}:{customer}:{n}:{again}",
                        customer_id=customer,
                        coupon_id=coupon_id,
                        kind=OutboxKind.MARKETING,
                        template="t",
                        data={},
                        not_before=at,
                        not_after=at + timedelta(days=2),
                        due_at=at,
                        state=rng.choice((OutboxState.SENT, OutboxState.EXPIRED))
                        if not held
                        else OutboxState.SKIPPED,
                        error_code=OutboxError.HOLDOUT if held else None,
                        attempts=0,
                        created_at=at + timedelta(minutes=again),
                        campaign=campaign,
                        arm=arm,
                    )
                )
        for customer in range(1, customers + 1, 3):
            at = moment()
            used = at + timedelta(days=1) if customer % 2 else None
            coupons.append(_coupon(len(coupons) + 1, customer, "welcome", at, used))
        for _ in range(900):
            purchases.append(
                dict(
                    customer_id=rng.randint(1, customers),
                    amount_minor=rng.randrange(50_000, 300_000, 5_000),
                    at=moment(),
                )
            )
        await repos.session.execute(insert(Coupon), coupons)
        await repos.session.execute(insert(OutboxMessage), rows)
        await repos.session.execute(insert(Purchase), purchases)


def _coupon(
    id_: int, customer: int, kind: str, at: datetime, used: datetime | None
) -> dict[str, object]:
    return dict(
        id=id_,
        code=f"D{id_:08d}",
        customer_id=customer,
        kind=kind,
        percent=10,
        issued_at=at,
        expires_at=at + timedelta(days=20),
        redeemed_at=used,
    )


async def close_all(results: CampaignResultsService) -> int:
    runs = 0
    while await results.close_days():
        runs += 1
    return runs


async def closed_through(db: Database) -> date | None:
    async with db.reading() as repos:
        return await repos.campaign_days.closed_through()


PERIODS = [
    Period(date(2026, 1, 1), date(2026, 6, 20)),  # everything: closed days and the live rest
    Period(date(2026, 3, 20), date(2026, 4, 5)),  # closed, over the DST change
    Period(date(2026, 5, 10), date(2026, 6, 1)),  # straddling the last closed day
    Period(date(2026, 6, 1), date(2026, 6, 20)),  # live only
]


async def test_closed_days_add_up_to_the_live_count(db: Database) -> None:
    await seed(db)
    results = service(db)
    before = {period: await results.results(period) for period in PERIODS}
    assert all(before.values())
    runs = await close_all(results)
    # January 1 to May 20 (its window ends 20.06 00:00, before 09:00): 140 days, 30 a run
    assert await closed_through(db) == date(2026, 5, 20) == results.last_closable_day()
    assert runs == 5 and CLOSE_PER_RUN == 30
    async with db.reading() as repos:
        days = await repos.session.scalar(select(func.count(func.distinct(CampaignDay.day))))
        totals = await repos.campaign_days.totals(date(2026, 1, 1), date(2026, 5, 20))
    assert days == 140  # a marker for each day, assignments or not
    assert sum(row.customers for row in totals) > 400
    for period in PERIODS:
        start, end = period.bounds(BERLIN)
        live = await results.live(start, end)
        assert await results.results(period) == live == before[period], period
    # a part of a day at either end (the charts ask for [start, end) as they like)
    start, end = datetime(2026, 2, 3, 15, tzinfo=BERLIN), datetime(2026, 6, 2, 7, tzinfo=BERLIN)
    assert await results.between(start, end) == await results.live(start, end)
    # recounting changes nothing: the same days closed again replace their rows
    async with db.transaction() as repos:
        await repos.campaign_days.reopen_from(date(2026, 1, 1))
    assert await closed_through(db) is None
    assert await close_all(results) == 5
    assert await results.results(PERIODS[0]) == before[PERIODS[0]]


async def test_the_report_reads_closed_days_from_their_rows(db: Database) -> None:
    """Once closed, a day's counts come from `campaign_days`: a row changed there shows."""
    await seed(db)
    results = service(db)
    await close_all(results)
    period = Period(date(2026, 2, 1), date(2026, 2, 28))
    [before] = [r for r in await results.results(period) if r.campaign == "birthday"]
    async with db.transaction() as repos:
        c = CampaignDay
        row = await repos.session.scalar(
            select(c).where(c.campaign == "birthday", c.arm == "a", c.day == date(2026, 2, 10))
        )
        if row is None:
            repos.session.add(
                CampaignDay(
                    campaign="birthday",
                    arm="a",
                    day=date(2026, 2, 10),
                    assigned=0,
                    sent=0,
                    redeemed=0,
                    came_back=0,
                    revenue_minor=0,
                )
            )
            await repos.session.flush()
            row = await repos.session.scalar(
                select(c).where(c.campaign == "birthday", c.arm == "a", c.day == date(2026, 2, 10))
            )
        assert row is not None
        row.assigned += 1000
    [after] = [r for r in await results.results(period) if r.campaign == "birthday"]
    a_before = next(arm for arm in before.arms if arm.arm == "a")
    a_after = next(arm for arm in after.arms if arm.arm == "a")
    assert a_after.customers == a_before.customers + 1000


async def test_nothing_closes_before_its_window_and_an_empty_base_has_nothing(
    db: Database,
) -> None:
    results = service(db)
    assert await results.close_days() == 0
    assert await closed_through(db) is None
    await seed(db, customers=10)
    early = service(db, FixedClock(datetime(2026, 1, 31, 0, 30, tzinfo=BERLIN)))
    assert early.last_closable_day() == date(2025, 12, 31)  # 1.01's window ends 1.02 00:00
    assert await early.close_days() == 0


async def test_a_customer_assigned_on_two_days_counts_twice_once_a_day(db: Database) -> None:
    async with db.transaction() as repos:
        repos.session.add(
            Customer(id=1, tg_user_id=7, name="К", created_at=NOW - timedelta(days=400))
        )
        for n, at in enumerate(
            (
                datetime(2026, 3, 2, 10, tzinfo=BERLIN),
                datetime(2026, 3, 2, 18, tzinfo=BERLIN),  # the same day: the same assignment
                datetime(2026, 3, 5, 10, tzinfo=BERLIN),
            )
        ):
            repos.session.add(
                OutboxMessage(
                    key=f"reactivation:1:{n}",
                    customer_id=1,
                    kind=OutboxKind.MARKETING,
                    template="t",
                    data={},
                    not_before=at,
                    not_after=at,
                    due_at=at,
                    state=OutboxState.SENT,
                    attempts=0,
                    created_at=at,
                    campaign="reactivation",
                    arm="a",
                )
            )
        repos.session.add(
            Purchase(customer_id=1, amount_minor=100_000, at=datetime(2026, 3, 6, tzinfo=BERLIN))
        )
    results = service(db)
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    for _ in range(2):  # live, then from the closed days
        [result] = await results.results(period)
        [arm] = result.arms
        assert (arm.customers, arm.sent, arm.came_back, arm.revenue_minor) == (2, 2, 2, 200_000)
        await close_all(results)
    assert await closed_through(db) == date(2026, 5, 20)


VISIT = "date,phone,customer,service,master,amount\n{day} 15:30,89161234567,Анна,manicure,,1500\n"


async def test_an_import_of_old_visits_reopens_the_days_it_may_change(
    db: Database, business: Business
) -> None:
    """Анна, imported with a visit of 2025, got the reactivation on 1 February and 1 March and
    did not come back; days closed from 1 February. A visit of 14 March imported later makes her "came back": the days from
    12 February (14 March less the 30-day window) are reopened, counted live at once, and
    closed again by the planner."""
    clock = FixedClock(NOW)
    importer = ImportService(db, clock, business, BERLIN)
    await importer.run(io.BytesIO(VISIT.format(day="2025-06-01").encode()), Kind.VISITS, apply=True)
    async with db.transaction() as repos:
        customer = await repos.session.scalar(select(Customer.id))
        for at in (
            datetime(2026, 2, 1, 12, tzinfo=BERLIN),
            datetime(2026, 3, 1, 12, tzinfo=BERLIN),
        ):
            repos.session.add(
                OutboxMessage(
                    key=f"reactivation:{at.month}",
                    customer_id=customer,
                    kind=OutboxKind.MARKETING,
                    template="t",
                    data={},
                    not_before=at,
                    not_after=at,
                    due_at=at,
                    state=OutboxState.SENT,
                    attempts=0,
                    created_at=at,
                    campaign="reactivation",
                    arm="a",
                )
            )
    results = service(db, clock)
    await close_all(results)
    period = Period(date(2026, 3, 1), date(2026, 3, 31))

    async def came_back() -> int:
        [result] = await results.results(period)
        return result.arms[0].came_back

    assert await came_back() == 0
    assert await closed_through(db) == date(2026, 5, 20)
    report = await importer.run(
        io.BytesIO(VISIT.format(day="2026-03-14").encode()), Kind.VISITS, apply=True
    )
    assert report.visits_new == 1
    assert await closed_through(db) == date(2026, 2, 11)
    assert await came_back() == 1  # live
    await close_all(results)
    assert await closed_through(db) == date(2026, 5, 20)
    assert await came_back() == 1  # closed again
    # a dry run, or visits already there, reopen nothing
    await importer.run(io.BytesIO(VISIT.format(day="2026-03-14").encode()), Kind.VISITS, apply=True)
    await importer.run(
        io.BytesIO(VISIT.format(day="2026-01-14").encode()), Kind.VISITS, apply=False
    )
    assert await closed_through(db) == date(2026, 5, 20)


async def test_the_planners_close_days_with_the_outbox_ones(
    db: Database, business: Business
) -> None:
    await seed(db, customers=10)
    planners = Planners(db, FixedClock(NOW), business, BERLIN)
    service(db).register(Features(Events(), planners))
    planned = await planners.run_all()
    assert planned["campaign_days"] == 30
    assert await closed_through(db) == date(2026, 1, 30)


async def test_a_purchase_written_while_days_are_counted_holds_their_closing_back(
    db: Database,
) -> None:
    """Counted in a snapshot, written after: a visit of those days' windows written in between
    (an import under way) makes the run write nothing; the next run counts it. A sale at now
    (outside every closed window) does not hold anything back."""
    await seed(db, customers=10)
    results = service(db)
    counted = results._counted
    sales = [
        datetime(2026, 1, 20, 12, tzinfo=BERLIN),  # within the first 30 days' windows
        NOW,  # a staff sale today
    ]

    async def counted_then_sold(repos, days):  # type: ignore[no-untyped-def]
        rows = await counted(repos, days)
        if sales:
            async with db.transaction() as writing:
                await writing.purchases.add(
                    Purchase(customer_id=1, amount_minor=1, at=sales.pop(0))
                )
        return rows

    results._counted = counted_then_sold  # type: ignore[method-assign]
    assert await results.close_days() == 0
    assert await closed_through(db) is None
    assert await results.close_days() == 30  # the sale at now holds nothing back
    assert await closed_through(db) == date(2026, 1, 30)
    period = Period(date(2026, 1, 1), date(2026, 1, 30))
    start, end = period.bounds(BERLIN)
    assert await results.results(period) == await results.live(start, end)
