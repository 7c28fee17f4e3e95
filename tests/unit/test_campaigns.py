"""Control groups and experiments: the assignment (stable, close to its share, recorded on the
row in the one place every planner's rows pass), variant b when a row is composed, the results
of a period against a hand-computed fixture, and the lift of a seeded base with a known effect
(25 % came back after the reactivation, 10 % in the holdout)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from bot.business import Business, CampaignRule, Campaigns, Variant
from bot.clock import FixedClock
from bot.db.models import (
    Coupon,
    Customer,
    OutboxError,
    OutboxKind,
    OutboxMessage,
    OutboxState,
    Purchase,
)
from bot.db.repositories import Database
from bot.outbox.compose import compose
from bot.outbox.planners import Planners
from bot.rendering import Renderer
from bot.services.broadcasts import BroadcastService
from bot.services.campaign_results import (
    CampaignResultsService,
    newcombe,
    wilson,
    winner_of,
)
from bot.services.campaigns import CampaignAssigner, arm_of, campaign_of, draws
from bot.services.stats import Period

MOSCOW = ZoneInfo("Europe/Moscow")
NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 23))


def local(m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=MOSCOW)


# ---- the assignment --------------------------------------------------------------------------


def test_campaign_of_each_planners_key() -> None:
    assert campaign_of("birthday:12:2026") == "birthday"
    assert campaign_of("birthday_soon:12:2026") == "birthday"
    assert campaign_of("holiday:mar8:2026:12") == "holiday"
    assert campaign_of("thanks:77") == "thanks"
    assert campaign_of("expiry:5") == "expiry"
    assert campaign_of("due_offer:12:manicure:3:0") == "due_offer"
    assert campaign_of("reactivation:12:3:2") == "reactivation"
    assert campaign_of("broadcast:7:12") == "broadcast:7"
    for key in (
        "survey:5",
        "reminder:3:24h",
        "broadcast_report:7",
        "booking_new:1",
        "broadcast:x:1",
    ):
        assert campaign_of(key) is None


def test_the_assignment_is_stable_and_close_to_the_share_on_10000_customers() -> None:
    rules = Campaigns(holdout=0.1, reactivation=CampaignRule(b=Variant(template="reactivation_b")))
    arms = [arm_of(c, "reactivation", rules) for c in range(1, 10001)]
    assert arms == [arm_of(c, "reactivation", rules) for c in range(1, 10001)]  # no random state
    assert 900 <= arms.count("holdout") <= 1100  # 10 % ± 3.3 standard deviations
    assert 4300 <= arms.count("a") <= 4700 and 4300 <= arms.count("b") <= 4700
    # each campaign draws its own: the birthday's holdout is not the reactivation's
    birthday = [arm_of(c, "birthday", rules) for c in range(1, 10001)]
    assert 900 <= birthday.count("holdout") <= 1100
    both = sum(1 for x, y in zip(arms, birthday, strict=True) if x == y == "holdout")
    assert both < 200  # about 1 % (10 % of 10 %), not 10 %
    assert set(birthday) == {"a", "holdout"}  # no variant b there
    # another salt, other groups
    salted = Campaigns(holdout=0.1, salt="other")
    other = [arm_of(c, "birthday", salted) for c in range(1, 10001)]
    assert sum(1 for x, y in zip(birthday, other, strict=True) if x == y == "holdout") < 200


def test_a_winner_takes_everyone_but_the_holdout_and_a_share_of_zero_holds_nobody() -> None:
    rules = Campaigns(holdout=0.2, reactivation=CampaignRule(b=Variant(percent=20)))
    arms = [arm_of(c, "reactivation", rules, {"reactivation": "b"}) for c in range(1, 2001)]
    assert set(arms) == {"b", "holdout"}
    held = [c for c in range(1, 2001) if arm_of(c, "reactivation", rules) == "holdout"]
    assert held == [c for c, arm in zip(range(1, 2001), arms, strict=True) if arm == "holdout"]
    assert {arm_of(c, "birthday", Campaigns()) for c in range(1, 2001)} == {"a"}
    own = Campaigns(holdout=0.1, broadcast=CampaignRule(holdout=0))
    assert {arm_of(c, "broadcast:3", own) for c in range(1, 2001)} == {"a"}
    assert draws(5, "x", "s") == draws(5, "x", "s") != draws(6, "x", "s")


async def _customers(db: Database, count: int, **values: Any) -> list[int]:
    async with db.transaction() as repos:
        await repos.session.execute(
            insert(Customer),
            [
                dict(id=i, tg_user_id=10_000 + i, name=f"К{i}", created_at=local(1, 1), **values)
                for i in range(1, count + 1)
            ],
        )
    return list(range(1, count + 1))


async def test_planned_rows_record_their_arm_and_the_holdout_is_never_to_be_sent(
    db: Database, business: Business
) -> None:
    """The birthday planner writes as ever; the one place its rows pass records each row's
    campaign and arm, and closes the held-out ones (skipped, error code holdout)."""
    rules = Campaigns(holdout=0.3, birthday=CampaignRule(b=Variant(template="birthday_greeting_b")))
    clock = FixedClock(local(11, 23, 12))
    await _customers(db, 300, birth_day=23, birth_month=11)
    db.assign = CampaignAssigner(rules)
    planners = Planners(db, clock, business.model_copy(update={"campaigns": rules}), MOSCOW)
    assert await planners.birthdays() == 300
    assert await planners.birthdays() == 0  # planned once, assigned once
    o = OutboxMessage
    async with db.reading() as repos:
        query = select(o.customer_id, o.campaign, o.arm, o.state, o.error_code)
        rows = (await repos.session.execute(query)).all()
    assert len(rows) == 300
    for customer_id, campaign, arm, state, code in rows:
        assert campaign == "birthday"
        assert arm == arm_of(customer_id or 0, "birthday", rules)
        if arm == "holdout":
            assert (state, code) == (OutboxState.SKIPPED, OutboxError.HOLDOUT)
        else:
            assert (state, code) == (OutboxState.PENDING, None)
    held = sum(1 for row in rows if row.arm == "holdout")
    assert 60 <= held <= 120  # 30 % of 300 = 90
    assert {row.arm for row in rows} == {"a", "b", "holdout"}


async def test_variant_b_is_composed_with_its_text_and_its_coupon_value(
    db: Database, business: Business
) -> None:
    rules = Campaigns(reactivation=CampaignRule(b=Variant(template="reactivation_b", percent=20)))
    tuned = business.model_copy(update={"campaigns": rules})
    await _customers(db, 2)
    render = Renderer(MOSCOW)
    now = local(11, 23)
    texts = {}
    async with db.transaction() as repos:
        for customer_id, arm in ((1, "a"), (2, "b")):
            row = OutboxMessage(
                key=f"reactivation:{customer_id}:1:1",
                customer_id=customer_id,
                kind=OutboxKind.MARKETING,
                template="reactivation",
                data={"coupon": {"kind": "reactivation", "percent": 15, "valid_days": 10}},
                not_before=now,
                not_after=now + timedelta(days=3),
                due_at=now,
                created_at=now,
                campaign="reactivation",
                arm=arm,
            )
            repos.session.add(row)
            await repos.session.flush()
            customer = await repos.customers.get(customer_id)
            texts[arm], _ = await compose(repos, row, customer, tuned, MOSCOW, render, now)
            coupon = await repos.coupons.get(row.coupon_id or 0)
            assert coupon is not None and coupon.percent == (15 if arm == "a" else 20)
    assert "давно вас не видели" in texts["a"].lower() and "15%" in texts["a"]
    assert "как у вас дела" in texts["b"] and "20%" in texts["b"]


# ---- the intervals ---------------------------------------------------------------------------


def test_wilson_and_newcombe_match_the_published_examples() -> None:
    """Newcombe (1998), table II: 56/70 − 48/80 = 0.2, hybrid score interval 0.0524 to
    0.3339; 9/10 − 3/10 = 0.6, 0.1705 to 0.8090. Wilson (1927) for 81/263: 0.2553 to 0.3662."""
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    lift = newcombe(56, 70, 48, 80)
    assert lift is not None
    assert (round(lift.difference, 4), round(lift.low, 4), round(lift.high, 4)) == (
        0.2,
        0.0524,
        0.3339,
    )
    other = newcombe(9, 10, 3, 10)
    assert other is not None and (round(other.low, 4), round(other.high, 4)) == (0.1705, 0.809)
    assert newcombe(1, 0, 1, 1) is None


# ---- the results -----------------------------------------------------------------------------


async def _row(
    db: Database,
    customer_id: int,
    campaign: str,
    arm: str,
    at: datetime,
    *,
    state: OutboxState = OutboxState.SENT,
    redeemed_at: datetime | None = None,
    key: str | None = None,
) -> None:
    async with db.transaction() as repos:
        coupon_id = None
        if arm != "holdout" and state == OutboxState.SENT:
            coupon = Coupon(
                code=f"C{customer_id}{campaign[:3].upper()}{at.day}"[:16],
                customer_id=customer_id,
                kind="gift",
                percent=10,
                issued_at=at,
                expires_at=at + timedelta(days=10),
                redeemed_at=redeemed_at,
            )
            repos.session.add(coupon)
            await repos.session.flush()
            coupon_id = coupon.id
        repos.session.add(
            OutboxMessage(
                key=key or f"{campaign}:{customer_id}:{at.isoformat()}",
                customer_id=customer_id,
                coupon_id=coupon_id,
                kind=OutboxKind.MARKETING,
                template="t",
                data={},
                not_before=at,
                not_after=at + timedelta(days=2),
                due_at=at,
                state=state,
                error_code=OutboxError.HOLDOUT if arm == "holdout" else None,
                sent_at=at if state == OutboxState.SENT else None,
                created_at=at,
                campaign=campaign,
                arm=arm,
            )
        )


async def _bought(db: Database, customer_id: int, at: datetime, rubles: int) -> None:
    async with db.transaction() as repos:
        await repos.purchases.add(
            Purchase(customer_id=customer_id, amount_minor=rubles * 100, at=at)
        )


def _service(db: Database, window_days: int = 30) -> CampaignResultsService:
    return CampaignResultsService(
        db, FixedClock(local(11, 23)), Campaigns(window_days=window_days), MOSCOW
    )


async def test_sent_redeemed_came_back_and_revenue_by_hand(db: Database) -> None:
    """November 1–23, a 30-day window from each customer's first row of the campaign that day
    (the unit is the assignment per day):

    reactivation, arm a: c1 (sent 5.11 12:00, its coupon used; bought 10.11 for 1 500 and 5.12
    12:00, exactly 30 days on, for 500; 5.12 12:01 for 700 is too late for it), c1 again on 12.11
    (another day, another assignment: sent, no coupon; 5.12's 500 and 700 are within its window:
    came back, 1 200), c2 (sent 6.11; bought 1.11, before it, and 16.11 for 2 500, which the
    broadcast of 15.11 also claims), c3 (its row expired: assigned, never sent; bought nothing):
    4 assignments, 3 sent, 1 coupon, 3 came back, 5 700 (with customers counted once it was 3,
    2, 1, 2 and 4 500: c1's second message was folded into the first).
    reactivation, holdout: c4 (5.11; bought 20.11 for 1 000), c5 (8.11; nothing): 2, 0, 0, 1, 1 000.
    broadcast:7, arm a: c2 (15.11; 16.11 for 2 500): 1, 1, 0, 1, 2 500.
    c6's row of 20.10 is before the period: not counted."""
    await _customers(db, 6)
    await _row(db, 1, "reactivation", "a", local(11, 5), redeemed_at=local(11, 10))
    await _row(db, 1, "reactivation", "a", local(11, 12), key="reactivation:1:2")
    await _bought(db, 1, local(11, 10), 1500)
    await _bought(db, 1, local(12, 5, 12, 0), 500)
    await _bought(db, 1, local(12, 5, 12, 1), 700)
    await _row(db, 2, "reactivation", "a", local(11, 6))
    await _bought(db, 2, local(11, 1), 900)
    await _bought(db, 2, local(11, 16), 2500)
    await _row(db, 3, "reactivation", "a", local(11, 7), state=OutboxState.EXPIRED)
    await _row(db, 4, "reactivation", "holdout", local(11, 5), state=OutboxState.SKIPPED)
    await _bought(db, 4, local(11, 20), 1000)
    await _row(db, 5, "reactivation", "holdout", local(11, 8), state=OutboxState.SKIPPED)
    await _row(db, 2, "broadcast:7", "a", local(11, 15))
    await _row(db, 6, "reactivation", "a", local(10, 20))
    await _bought(db, 6, local(11, 2), 800)

    results = await _service(db).results(NOVEMBER)
    assert [r.campaign for r in results] == ["reactivation", "broadcast:7"]
    reactivation, broadcast = results
    shape = [
        (arm.arm, arm.customers, arm.sent, arm.redeemed, arm.came_back, arm.revenue_minor)
        for arm in reactivation.arms
    ]
    assert shape == [("a", 4, 3, 1, 3, 570_000), ("holdout", 2, 0, 0, 1, 100_000)]
    [arm] = broadcast.arms
    assert (arm.arm, arm.customers, arm.sent, arm.redeemed, arm.came_back) == ("a", 1, 1, 0, 1)
    assert arm.revenue_minor == 250_000
    assert reactivation.lift is not None
    assert reactivation.lift.difference == pytest.approx(3 / 4 - 1 / 2)
    assert not reactivation.lift.significant  # 6 assignments tell nothing yet
    assert reactivation.variants is None and broadcast.lift is None

    shorter = await _service(db, window_days=5).results(NOVEMBER)
    assert [(a.arm, a.came_back, a.revenue_minor) for a in shorter[0].arms] == [
        ("a", 1, 150_000),  # c1 on 10.11 only (nothing 12-17.11); c2's 16.11 is 10 days on
        ("holdout", 0, 0),
    ]


async def _seed_effect(db: Database, treated: int, held: int, *, arm: str = "a") -> None:
    """`treated` customers got the reactivation, a quarter came back within the window (on day
    10); `held` were held out, a tenth came back. Customer ids from 1, the treated first."""
    at = local(11, 2)
    total = treated + held
    await _customers(db, total)
    async with db.transaction() as repos:
        rows, purchases = [], []
        for i in range(1, total + 1):
            in_holdout = i > treated
            rows.append(
                dict(
                    key=f"reactivation:{i}:1:1",
                    customer_id=i,
                    kind=OutboxKind.MARKETING,
                    template="reactivation",
                    data={},
                    not_before=at,
                    not_after=at + timedelta(days=3),
                    due_at=at,
                    state=OutboxState.SKIPPED if in_holdout else OutboxState.SENT,
                    error_code=OutboxError.HOLDOUT if in_holdout else None,
                    attempts=0,
                    created_at=at,
                    campaign="reactivation",
                    arm="holdout" if in_holdout else arm,
                )
            )
            rank = i - treated if in_holdout else i
            if (rank % 10 == 0) if in_holdout else (rank % 4 == 0):
                purchases.append(
                    dict(customer_id=i, amount_minor=200_000, at=at + timedelta(days=10))
                )
        await repos.session.execute(insert(OutboxMessage), rows)
        await repos.session.execute(insert(Purchase), purchases)


async def test_a_known_effect_is_reported_with_its_lift_and_an_interval_around_it(
    db: Database,
) -> None:
    """2,000 got the reactivation (25 % came back), 2,000 were held out (10 %): 15 points."""
    await _seed_effect(db, 2000, 2000)
    [result] = await _service(db).results(NOVEMBER)
    a, holdout = result.arms
    assert (a.customers, a.came_back, holdout.customers, holdout.came_back) == (
        2000,
        500,
        2000,
        200,
    )
    assert a.came_back_share == 0.25 and holdout.came_back_share == 0.1
    lift = result.lift
    assert lift is not None
    assert lift.difference == pytest.approx(0.15)
    assert 0.12 < lift.low < 0.15 < lift.high < 0.18
    assert lift.significant


async def test_a_small_sample_is_not_significant(db: Database) -> None:
    await _seed_effect(db, 8, 10)  # 2 of 8 came back, 1 of 10
    [result] = await _service(db).results(NOVEMBER)
    assert result.lift is not None
    assert result.lift.difference == pytest.approx(0.15)
    assert result.lift.low < 0 < result.lift.high
    assert not result.lift.significant


async def variants_base(db: Database, held: int = 0) -> None:
    """The reactivation's variant b came back at 25 %, a at 10 % (1,000 customers each, ids 1 to
    2,000, a first); `held` more were held out (a tenth came back). All planned on 2 November."""
    await _customers(db, 2000 + held)
    at = local(11, 2)
    async with db.transaction() as repos:
        rows, purchases = [], []
        for i in range(1, 2001 + held):
            arm = "holdout" if i > 2000 else "b" if i > 1000 else "a"
            rows.append(
                dict(
                    key=f"reactivation:{i}:1:1",
                    customer_id=i,
                    kind=OutboxKind.MARKETING,
                    template="reactivation",
                    data={},
                    not_before=at,
                    not_after=at,
                    due_at=at,
                    state=OutboxState.SKIPPED if arm == "holdout" else OutboxState.SENT,
                    error_code=OutboxError.HOLDOUT if arm == "holdout" else None,
                    attempts=0,
                    created_at=at,
                    campaign="reactivation",
                    arm=arm,
                )
            )
            if i % (4 if arm == "b" else 10) == 0:
                purchases.append(dict(customer_id=i, amount_minor=1000, at=at + timedelta(days=1)))
        await repos.session.execute(insert(OutboxMessage), rows)
        await repos.session.execute(insert(Purchase), purchases)


async def test_variants_compared_and_the_winner_recorded_once(db: Database) -> None:
    """Variant b came back at 25 %, a at 10 % (1,000 each): b wins; the owner makes it the
    default once, and the assignment gives it to everyone but the holdout from then on."""
    await variants_base(db)
    rules = Campaigns(reactivation=CampaignRule(b=Variant(percent=20)))
    service = CampaignResultsService(db, FixedClock(local(11, 23)), rules, MOSCOW)
    [result] = await service.results(NOVEMBER)
    assert result.variants is not None and result.variants.difference == pytest.approx(0.15)
    assert winner_of(result) == "b" and result.lift is None
    assert service.can_choose(result, {}) == "b"
    assert not await service.make_default("birthday", "b", "Анна", NOVEMBER)  # no variants there
    assert not await service.make_default("reactivation", "holdout", "Анна", NOVEMBER)
    assert not await service.make_default("reactivation", "a", "Анна", NOVEMBER)  # the worse one
    october = Period(date(2026, 10, 1), date(2026, 10, 31))
    assert not await service.make_default("reactivation", "b", "Анна", october)  # no figures
    assert await service.winners() == {}
    assert await service.make_default("reactivation", "b", "Анна", NOVEMBER)
    assert not await service.make_default("reactivation", "b", "Ольга", NOVEMBER)  # chosen already
    assert await service.winners() == {"reactivation": "b"}
    assert service.can_choose(result, {"reactivation": "b"}) is None
    async with db.reading() as repos:
        winners = await repos.campaign_results.winners()
    assert {arm_of(c, "reactivation", rules, winners) for c in range(1, 500)} == {"b"}


async def test_rows_of_no_campaign_and_other_periods_are_not_counted(db: Database) -> None:
    await _customers(db, 1)
    async with db.transaction() as repos:
        await repos.outbox.queue(
            key="survey:1",
            kind="service",
            template="survey",
            customer_id=1,
            not_before=local(11, 5),
            not_after=local(11, 6),
            now=local(11, 5),
        )
    assert await _service(db).results(NOVEMBER) == []
    await _row(db, 1, "thanks", "a", datetime(2026, 11, 23, 21, 0, tzinfo=UTC))  # 24.11 in Moscow
    assert await _service(db).results(NOVEMBER) == []


async def test_a_broadcasts_control_group_is_neither_a_recipient_nor_skipped(
    db: Database, business: Business
) -> None:
    """A broadcast is a campaign of its own (`broadcast:<id>`): its held-out customers are written
    and closed, and its progress counts them apart: not recipients, not skipped, not waiting."""
    rules = Campaigns(broadcast=CampaignRule(holdout=0.5))
    await _customers(db, 40, onboarded_at=local(1, 2))
    db.assign = CampaignAssigner(rules)
    tuned = business.model_copy(update={"campaigns": rules})
    clock = FixedClock(local(11, 23, 12))
    broadcasts = BroadcastService(db, clock, tuned, MOSCOW, Renderer(MOSCOW), admin_chat_id=-100)
    broadcast_id = await broadcasts.create(
        by="Ольга",
        content={"kind": "text", "html": "Привет"},
        buttons=[],
        coupon=None,
        conditions=[],
        starts_at=None,
    )
    assert await broadcasts.queue_due() == 40
    held = [c for c in range(1, 41) if arm_of(c, f"broadcast:{broadcast_id}", rules) == "holdout"]
    assert 8 <= len(held) <= 32
    progress = await broadcasts.progress(broadcast_id)
    assert progress is not None
    assert (progress.recipients, progress.held_out) == (40 - len(held), len(held))
    assert (progress.waiting, progress.skipped, progress.sent) == (40 - len(held), 0, 0)
    text = Renderer(MOSCOW).text("ru", "broadcast_report", progress=progress)
    assert f"Получателей: {40 - len(held)} · контрольная группа" in text
    assert f"для сравнения): {len(held)}\nДоставлено: 0" in text


async def test_the_welcome_coupon_is_reported_without_a_control_group(db: Database) -> None:
    """No outbox row and no holdout: the welcome coupons given in the period are its one arm.
    c1 got one on 3.11, used it and bought on 4.11 (1 200) and 5.12 (too late); c2 got one on
    10.11 and did nothing; c3's of 31.10 is before the period."""
    await _customers(db, 3)
    async with db.transaction() as repos:
        for customer_id, at, used in (
            (1, local(11, 3), local(11, 4)),
            (2, local(11, 10), None),
            (3, local(10, 31), None),
        ):
            repos.session.add(
                Coupon(
                    code=f"WELCOME{customer_id}",
                    customer_id=customer_id,
                    kind="welcome",
                    percent=10,
                    issued_at=at,
                    expires_at=at + timedelta(days=30),
                    redeemed_at=used,
                )
            )
    await _bought(db, 1, local(11, 4), 1200)
    await _bought(db, 1, local(12, 5), 900)
    [result] = await _service(db).results(NOVEMBER)
    assert result.campaign == "welcome" and result.lift is None and result.variants is None
    [arm] = result.arms
    assert (arm.arm, arm.customers, arm.sent, arm.redeemed, arm.came_back) == ("a", 2, 2, 1, 1)
    assert arm.revenue_minor == 120_000
    text = Renderer(MOSCOW).text(
        "ru",
        "stats_campaigns",
        usage=False,
        period=NOVEMBER,
        results=[result],
        winners={},
        window_days=30,
        currency="₽",
    )
    assert "<b>Приветствие</b>\n• получили: 2 клиента · отправлено 2 · купон использовали 1" in text
    assert "его никому не придерживают" in text
