"""Staff cancel a mistaken sale: the purchase stops counting, its cashback is taken back (never
below zero), points paid for it come back, a friend's first purchase's reward is withdrawn, what
it queued and was not sent is dropped, the closed /stats days are counted again, a cycle it set
is learned again, the audit names who; a second cancel, two at once, an old or imported sale
change nothing (both databases)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from bot.business import Business
from bot.clock import FixedClock
from bot.db import queries
from bot.db.engine import create_engine
from bot.db.models import (
    Cycle,
    LoyaltyEntry,
    OutboxMessage,
    Purchase,
    Referral,
    ReferralState,
    StaffAction,
    Survey,
)
from bot.db.repositories import Database, Repos
from bot.events import Events, SaleCancelled
from bot.outbox.planners import Planners
from bot.rendering import Renderer
from bot.services.customers import CustomerService
from bot.services.cycles import CycleService
from bot.services.exporting import Exporter
from bot.services.loyalty import LoyaltyService
from bot.services.points_pay import AnswerOutcome, PointsPayService
from bot.services.referrals import ReferralService
from bot.services.sale_cancel import (
    CANCEL_WITHIN,
    CancelOutcome,
    SaleCancelService,
    purchase_number,
)
from bot.services.staff import Staff, StaffService
from bot.services.stats import StatsService
from bot.services.surveys import SurveyService

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")


class Row(NamedTuple):
    state: str
    kind: str
    customer_id: int | None
    data: dict[str, Any]


IRA = Staff(2, "Ира")


@pytest.fixture
def cashback(business: Business) -> Business:
    """5 % cashback, points pay at most 30 % of a check; bring a friend rewards 200."""
    loyalty = business.loyalty.model_copy(
        update={
            "cashback": business.loyalty.cashback.model_copy(
                update={"enabled": True, "percent": 5, "max_share": 0.3, "expire_months": 12}
            ),
            "referral": business.loyalty.referral.model_copy(
                update={"enabled": True, "referrer_reward": 200}
            ),
        }
    )
    return business.model_copy(update={"loyalty": loyalty})


class Wired:
    """The services a sale and its cancel go through, subscribed as the app does."""

    def __init__(self, db: Database, clock: FixedClock, business: Business) -> None:
        self.events = Events()
        self.loyalty = LoyaltyService(db, clock, business, MOSCOW)
        self.events.on_purchase(self.loyalty.accrue_for_purchase)
        surveys = SurveyService(db, clock, business, MOSCOW, Renderer(MOSCOW))
        self.events.on_purchase(surveys.plan_after_purchase)
        self.events.on_purchase(Planners(db, clock, business, MOSCOW).thanks_after_purchase)
        referrals = ReferralService(db, clock, business, MOSCOW, secret_key=b"k" * 32)
        self.events.on_purchase(referrals.reward_for_purchase)
        cycles = CycleService(db, clock, business, MOSCOW, None)  # type: ignore[arg-type]
        self.events.on_purchase(cycles.learn_after_purchase)
        self.events.on_sale_cancelled(cycles.unlearn_cancelled)
        self.seen: list[SaleCancelled] = []

        async def seen(_repos: Repos, event: SaleCancelled) -> None:
            self.seen.append(event)

        self.events.on_sale_cancelled(seen)
        self.staff = StaffService(db, clock, business, MOSCOW, self.events)
        self.pay = PointsPayService(db, clock, business, self.loyalty, -100, Renderer(MOSCOW))
        self.cancels = SaleCancelService(db, clock, business, self.loyalty, self.events)


async def _customer(
    db: Database, clock: FixedClock, business: Business, tg: int = 7, offers: bool | None = None
) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(
        tg, name="Анна", username=None, language="ru", source=None, offers=offers
    )
    await customers.finish_onboarding(tg)
    return view.id


async def _balance(db: Database, customer_id: int) -> int:
    async with db.reading() as repos:
        return await repos.loyalty.balance(customer_id)


async def _ledger(db: Database, customer_id: int) -> list[tuple[str, int, int | None, str | None]]:
    async with db.reading() as repos:
        rows = await repos.session.execute(
            select(
                LoyaltyEntry.kind,
                LoyaltyEntry.points,
                LoyaltyEntry.purchase_id,
                LoyaltyEntry.reason,
            )
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.id)
        )
        return [(str(k), int(p), pid, r) for k, p, pid, r in rows]


async def _referral(db: Database, clock: FixedClock, referrer: int, friend: int) -> int:
    """`friend` joined by `referrer`'s link (their phone new): the reward waits for a purchase."""
    async with db.transaction() as repos:
        referral = Referral(
            referrer_id=referrer,
            friend_id=friend,
            phone_key="k",
            state=ReferralState.JOINED,
            joined_at=clock.now(),
        )
        repos.session.add(referral)
        await repos.session.flush()
        return referral.id


async def _outbox(db: Database, key: str) -> Row | None:
    """The outbox row of `key`, as it was read (the reading session's objects expire with it)."""
    async with db.reading() as repos:
        row = await repos.session.scalar(select(OutboxMessage).where(OutboxMessage.key == key))
        if row is None:
            return None
        return Row(str(row.state), str(row.kind), row.customer_id, dict(row.data or {}))


def test_a_sale_number_is_digits_with_or_without_a_hash() -> None:
    assert purchase_number("12") == 12 and purchase_number(" #125 ") == 125
    for bad in ("", "#", "12a", "-3", "1.5", "9" * 10, "#٣"):
        assert purchase_number(bad) is None, bad


async def test_cancel_takes_the_cashback_back_and_the_sale_stops_counting(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    await wired.staff.record_sale(OLGA, customer_id, 100000, "manicure")  # +50
    clock.advance(timedelta(days=1))
    sale = await wired.staff.record_sale(OLGA, customer_id, 200000, "manicure", "anna")  # +100
    assert await _balance(db, customer_id) == 150
    before = await _ledger(db, customer_id)

    done = await wired.cancels.cancel(IRA, sale.purchase_id)

    assert done.outcome is CancelOutcome.CANCELLED
    assert (done.taken, done.returned, done.short, done.balance) == (100, 0, 0, 50)
    assert done.cancelled_by == "Ира" and done.amount_minor == 200000
    after = await _ledger(db, customer_id)
    assert after[: len(before)] == before  # appended, never edited
    assert after[len(before) :] == [("correction", -100, sale.purchase_id, "sale_cancelled")]
    card = await wired.staff.card(customer_id)
    assert card is not None and card.visits == 1 and card.spent_minor == 100000
    async with db.reading() as repos:
        assert (await repos.purchases.summary(customer_id))[:2] == (1, 100000)
        row = await repos.sale_cancels.purchase(sale.purchase_id)
        assert row is not None and row.cancelled_by_id == IRA.id and row.cancelled_at is not None
        audit = (
            await repos.session.scalars(
                select(StaffAction).where(StaffAction.action == "sale_cancel")
            )
        ).one()
        assert audit.staff_name == "Ира" and audit.details["purchase_id"] == sale.purchase_id
        assert audit.details["points_taken"] == 100
    async with db.reading() as repos:
        assert await repos.session.get(Purchase, sale.purchase_id) is None  # not counted
    receipt = await _outbox(db, f"sale_cancelled:{sale.purchase_id}")
    assert receipt is not None and receipt.kind == "service" and receipt.customer_id == customer_id
    assert receipt.data["taken"] == 100 and receipt.data["balance"] == 50
    assert [(e.purchase_id, e.by, e.amount_minor) for e in wired.seen] == [
        (sale.purchase_id, IRA.id, 200000)
    ]

    mine = await Exporter(db, clock, cashback, MOSCOW).my_data(7)  # /mydata: kept, marked
    assert mine is not None and mine.summary.visits == 1
    visits = json.loads(mine.document)["visits"]
    assert [v["cancelled_at"] is not None for v in visits] == [False, True]

    again = await wired.cancels.cancel(OLGA, sale.purchase_id)
    assert again.outcome is CancelOutcome.ALREADY and again.cancelled_by == "Ира"
    assert await _ledger(db, customer_id) == after and len(wired.seen) == 1
    assert (await wired.cancels.preview(sale.purchase_id)).outcome is CancelOutcome.ALREADY


async def test_a_planners_rows_do_not_count_the_cancelled_sale_either(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    """An INSERT … SELECT into the outbox with a segment on visits (a broadcast's, a planner's):
    the SELECT inside it leaves the cancelled sale out too."""
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    sale = await wired.staff.record_sale(OLGA, customer_id, 100000)
    await wired.cancels.cancel(OLGA, sale.purchase_id)
    now = clock.now()

    async def planned(key: str, segment: Any) -> bool:
        async with db.transaction() as repos:
            rows = queries.one_customer_row(
                key,
                customer_id,
                template="broadcast",
                data={},
                not_before=now,
                not_after=now + timedelta(days=1),
                due_at=now,
                now=now,
            )
            return await repos.outbox.plan(rows.where(segment)) == 1

    assert not await planned("t:bought", queries.visits_at_least(1))
    assert await planned("t:none", queries.visits_exactly(0))


async def test_points_paid_for_the_sale_come_back_first_then_its_cashback_goes(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    await wired.loyalty.correct(OLGA, customer_id, 500, "старт")
    sale = await wired.staff.record_sale(OLGA, customer_id, 200000)  # +100 → 600
    asked = await wired.pay.ask(OLGA, sale.purchase_id, 600)  # its own cashback too
    await wired.pay.answer(customer_id, asked.request_id, True)
    assert await _balance(db, customer_id) == 0

    done = await wired.cancels.cancel(OLGA, sale.purchase_id)

    assert (done.returned, done.taken, done.short) == (600, 100, 0)
    assert await _balance(db, customer_id) == 500  # as before the sale
    ledger = await _ledger(db, customer_id)
    assert ledger[-2:] == [
        ("correction", 600, sale.purchase_id, "sale_cancelled"),
        ("correction", -100, sale.purchase_id, "sale_cancelled"),
    ]
    async with db.reading() as repos:
        returned = await repos.session.scalar(
            select(LoyaltyEntry).where(
                LoyaltyEntry.purchase_id == sale.purchase_id, LoyaltyEntry.points == 600
            )
        )
        assert returned is not None and returned.expires_at is not None  # as its cashback would
    receipt = await _outbox(db, f"sale_cancelled:{sale.purchase_id}")
    assert receipt is not None and receipt.data["returned"] == 600


async def test_cashback_spent_already_is_taken_only_as_far_as_the_balance_goes(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    sale = await wired.staff.record_sale(OLGA, customer_id, 200000)  # +100
    assert await wired.loyalty.spend(customer_id, 70)  # spent on something else

    done = await wired.cancels.cancel(OLGA, sale.purchase_id)

    assert (done.taken, done.short, done.balance) == (30, 70, 0)
    assert await _balance(db, customer_id) == 0  # never below zero
    async with db.reading() as repos:
        audit = await repos.session.scalar(
            select(StaffAction).where(StaffAction.action == "sale_cancel")
        )
        assert audit is not None and audit.details["points_short"] == 70


async def test_a_pending_survey_offer_and_pay_request_are_dropped_and_stats_days_reopened(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback, offers=True)
    await wired.loyalty.correct(OLGA, customer_id, 300, "старт")
    local = clock.now().astimezone(MOSCOW)
    clock.advance(local.replace(hour=23, minute=50) - local)
    sale = await wired.staff.record_sale(OLGA, customer_id, 100000, "manicure")
    asked = await wired.pay.ask(OLGA, sale.purchase_id, 100)
    for key in (f"survey:{sale.purchase_id}", f"thanks:{sale.purchase_id}"):
        queued = await _outbox(db, key)
        assert queued is not None and queued.state == "pending", key
    clock.advance(timedelta(minutes=15))  # past midnight: the sale's day is over
    await StatsService(db, clock, MOSCOW).close()
    async with db.reading() as repos:
        assert await repos.stats.days_closed_through() == local.date()

    await wired.cancels.cancel(OLGA, sale.purchase_id)

    for key in (
        f"survey:{sale.purchase_id}",
        f"thanks:{sale.purchase_id}",
        f"points_request:{asked.request_id}",
    ):
        row = await _outbox(db, key)
        assert row is not None and row.state == "skipped", key
    async with db.reading() as repos:
        assert await repos.session.scalar(select(func.count(Survey.id))) == 0
        closed = await repos.stats.days_closed_through()
        assert closed is None or closed < local.date()
    # the customer's tap on the request now: the sale is gone, nothing is spent
    answer = await wired.pay.answer(customer_id, asked.request_id, True)
    assert answer.outcome is AnswerOutcome.STALE and await _balance(db, customer_id) == 300


async def test_an_old_an_imported_or_an_unknown_sale_is_not_cancelled(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    sale = await wired.staff.record_sale(OLGA, customer_id, 100000)
    async with db.transaction() as repos:
        imported = await repos.purchases.add(
            Purchase(
                customer_id=customer_id,
                amount_minor=5000,
                at=clock.now(),
                import_key=f"{customer_id}:x:y",
            )
        )
    assert (await wired.cancels.cancel(OLGA, imported.id)).outcome is CancelOutcome.NOT_FOUND
    assert (await wired.cancels.cancel(OLGA, 999_999)).outcome is CancelOutcome.NOT_FOUND
    clock.advance(CANCEL_WITHIN + timedelta(minutes=1))
    assert (await wired.cancels.preview(sale.purchase_id)).outcome is CancelOutcome.TOO_OLD
    assert (await wired.cancels.cancel(OLGA, sale.purchase_id)).outcome is CancelOutcome.TOO_OLD
    card = await wired.staff.card(customer_id)
    assert card is not None and card.visits == 2 and not wired.seen


async def test_a_friends_only_purchase_cancelled_withdraws_the_referrers_reward(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    referrer = await _customer(db, clock, cashback, tg=1)
    friend = await _customer(db, clock, cashback, tg=2)
    referral_id = await _referral(db, clock, referrer, friend)
    first = await wired.staff.record_sale(OLGA, friend, 100000)
    assert await _balance(db, referrer) == 200
    notice = await _outbox(db, f"referral_reward:{referral_id}")
    assert notice is not None and notice.state == "pending"

    done = await wired.cancels.cancel(OLGA, first.purchase_id)

    assert done.referral_taken == 200 and await _balance(db, referrer) == 0
    notice = await _outbox(db, f"referral_reward:{referral_id}")
    assert notice is not None and notice.state == "skipped"  # never told: nothing to take back
    assert await _outbox(db, f"referral_withdrawn:{referral_id}:{first.purchase_id}") is None
    async with db.reading() as repos:
        referral = await repos.referrals.of_friend(friend)
        assert referral is not None and referral.state == ReferralState.JOINED
        assert referral.bought_at is None
    await wired.staff.record_sale(OLGA, friend, 100000)  # the real first purchase
    assert await _balance(db, referrer) == 200


async def test_a_referrer_told_of_the_reward_is_told_it_is_withdrawn(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    referrer = await _customer(db, clock, cashback, tg=1)
    friend = await _customer(db, clock, cashback, tg=2)
    referral_id = await _referral(db, clock, referrer, friend)
    first = await wired.staff.record_sale(OLGA, friend, 100000)
    assert await wired.loyalty.spend(referrer, 150)  # spent most of the reward already
    async with db.transaction() as repos:  # the reward's notice went out
        await repos.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key == f"referral_reward:{referral_id}")
            .values(state="sent", sent_at=clock.now())
        )

    done = await wired.cancels.cancel(OLGA, first.purchase_id)

    assert done.referral_taken == 50 and await _balance(db, referrer) == 0
    told = await _outbox(db, f"referral_withdrawn:{referral_id}:{first.purchase_id}")
    assert told is not None and told.customer_id == referrer and told.kind == "service"
    assert told.data == {"points": 50, "balance": 0}


async def test_the_reward_stays_while_the_friend_has_another_purchase(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    referrer = await _customer(db, clock, cashback, tg=1)
    friend = await _customer(db, clock, cashback, tg=2)
    await _referral(db, clock, referrer, friend)
    await wired.staff.record_sale(OLGA, friend, 100000)
    second = await wired.staff.record_sale(OLGA, friend, 50000)
    done = await wired.cancels.cancel(OLGA, second.purchase_id)
    assert done.referral_taken == 0 and await _balance(db, referrer) == 200


async def test_a_cycle_the_sale_set_is_learned_again_from_the_visits_left(
    db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    first = await wired.staff.record_sale(OLGA, customer_id, 100000, "manicure", "anna")
    clock.advance(timedelta(days=20))
    second = await wired.staff.record_sale(OLGA, customer_id, 100000, "manicure", "olga")
    await wired.cancels.cancel(OLGA, second.purchase_id)
    async with db.reading() as repos:
        cycle = await repos.session.get(Cycle, (customer_id, "manicure"))
        assert cycle is not None and cycle.last_purchase_id == first.purchase_id
        assert cycle.master_id == "anna"
    await wired.cancels.cancel(OLGA, first.purchase_id)
    async with db.reading() as repos:
        assert await repos.session.get(Cycle, (customer_id, "manicure")) is None


class SlowCancel(SaleCancelService):
    """Holds its transaction open after cancelling, so the other cancel comes meanwhile."""

    async def _drop_pending(self, repos: Repos, purchase: Purchase) -> None:
        await super()._drop_pending(repos, purchase)
        await asyncio.sleep(0.3)


async def test_two_staff_cancelling_at_once_cancel_once(
    database_url: str, db: Database, clock: FixedClock, cashback: Business
) -> None:
    wired = Wired(db, clock, cashback)
    customer_id = await _customer(db, clock, cashback)
    await wired.loyalty.correct(OLGA, customer_id, 500, "старт")
    sale = await wired.staff.record_sale(OLGA, customer_id, 200000)  # +100
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        services = [
            SlowCancel(
                Database(e),
                clock,
                cashback,
                LoyaltyService(Database(e), clock, cashback, MOSCOW),
                wired.events,
            )
            for e in engines
        ]
        done = await asyncio.gather(
            services[0].cancel(OLGA, sale.purchase_id), services[1].cancel(IRA, sale.purchase_id)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(d.outcome for d in done) == [CancelOutcome.ALREADY, CancelOutcome.CANCELLED]
    assert await _balance(db, customer_id) == 500
    ledger = await _ledger(db, customer_id)
    assert [e for e in ledger if e[3] == "sale_cancelled"] == [
        ("correction", -100, sale.purchase_id, "sale_cancelled")
    ]
    async with db.reading() as repos:
        count = await repos.session.scalar(
            select(func.count(StaffAction.id)).where(StaffAction.action == "sale_cancel")
        )
        assert count == 1
    assert len(wired.seen) == 1
