"""Bring a friend: the link's token, the friend's bonus at their phone (once, a new phone only),
the referrer's reward after the friend's first purchase (once), refusals, /referrals, erasure."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Customer, OutboxMessage, Referral, ReferralState
from bot.db.repositories import Database
from bot.events import Events
from bot.features import Features
from bot.outbox.planners import Planners
from bot.services.customers import CustomerService
from bot.services.referrals import ReferralService, referral_token
from bot.services.staff import Staff, StaffService
from tests.unit.conftest import points_ledger

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA = Staff(1, "Ольга")
KEY = b"test-secret-key"
ANNA, BORIS, VERA = 101, 102, 103


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def referrals(
    db: Database, clock: FixedClock, friendly: Business, events: Events
) -> ReferralService:
    service = ReferralService(db, clock, friendly, MOSCOW, secret_key=KEY)
    service.register(Features(events, Planners(db, clock, friendly, MOSCOW)))
    return service


@pytest.fixture
def customers(
    db: Database, clock: FixedClock, friendly: Business, events: Events
) -> CustomerService:
    return CustomerService(db, clock, friendly, MOSCOW, events, secret_key=KEY)


@pytest.fixture
def selling(
    db: Database, clock: FixedClock, friendly: Business, events: Events, referrals: ReferralService
) -> StaffService:
    return StaffService(db, clock, friendly, MOSCOW, events)


async def _join(customers: CustomerService, tg: int, phone: str, *, finish: bool = True) -> int:
    view = await customers.consent(tg, name=f"#{tg}", username=None, language="ru", source=None)
    await customers.set_phone(tg, phone)
    if finish:
        await customers.finish_onboarding(tg)
    return view.id


def test_only_a_ref_payload_is_a_token() -> None:
    assert referral_token("ref_AbCd-_1234") == "AbCd-_1234"
    for other in (None, "", "ref_", "ref_short", "src_instagram", "gift_ABCDEFGH", "ref_a b c d e"):
        assert referral_token(other) is None


async def test_the_token_is_stable_random_and_not_the_id(
    referrals: ReferralService, customers: CustomerService
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    boris = await _join(customers, BORIS, "+79990000002")
    token = await referrals.token(anna)
    assert await referrals.token(anna) == token  # the same link ever after
    assert token != str(anna) and not token.isdigit() and len(token) >= 12  # 72 random bits
    assert referral_token(f"ref_{token}") == token
    assert await referrals.token(boris) != token


async def test_the_friend_gets_the_bonus_once_at_their_phone(
    referrals: ReferralService, customers: CustomerService, db: Database
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    boris = await _join(customers, BORIS, "+79990000002", finish=False)
    joined = await referrals.join(BORIS, token)
    assert joined is not None and joined.state is ReferralState.JOINED and joined.bonus == 300
    assert await referrals.join(BORIS, token) is None  # a second time: nothing
    assert await points_ledger(db, boris) == [(300, "referral_bonus")]
    assert await points_ledger(db, anna) == []  # not before the friend buys


async def test_nothing_before_the_phone_or_by_an_unknown_link(
    referrals: ReferralService, customers: CustomerService, db: Database
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    await customers.consent(BORIS, name="Борис", username=None, language="ru", source=None)
    assert await referrals.join(BORIS, token) is None  # no phone yet
    await customers.set_phone(BORIS, "+79990000002")
    assert await referrals.join(BORIS, "NoSuchToken1") is None
    async with db.reading() as repos:
        assert (await repos.session.scalars(select(Referral))).all() == []


async def test_the_reward_comes_after_the_first_purchase_once_with_a_service_message(
    referrals: ReferralService,
    customers: CustomerService,
    selling: StaffService,
    db: Database,
    clock: FixedClock,
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    boris = await _join(customers, BORIS, "+79990000002", finish=False)
    await referrals.join(BORIS, token)
    await customers.finish_onboarding(BORIS)
    await selling.record_sale(OLGA, anna, 100000)  # the referrer's own sale: nothing
    assert await points_ledger(db, anna) == []
    await selling.record_sale(OLGA, boris, 150000)
    clock.advance(timedelta(days=3))
    await selling.record_sale(OLGA, boris, 150000)  # the second: nothing more
    assert await points_ledger(db, anna) == [(500, "referral_reward")]
    async with db.reading() as repos:
        notices = list(
            await repos.session.execute(
                select(
                    OutboxMessage.customer_id,
                    OutboxMessage.kind,
                    OutboxMessage.template,
                    OutboxMessage.data,
                )
            )
        )
        referral = (await repos.session.scalars(select(Referral))).one()
        state, bought_at = referral.state, referral.bought_at
    assert [tuple(n) for n in notices] == [(anna, "service", "referral_reward", {"points": 500})]
    assert state == ReferralState.REWARDED and bought_at is not None


async def test_self_referral_is_refused(
    referrals: ReferralService, customers: CustomerService, db: Database, selling: StaffService
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    assert await referrals.join(ANNA, token) is not None  # recorded as refused: their own link
    # a second account with the referrer's own phone
    boris = await _join(customers, BORIS, "+79990000001", finish=False)
    joined = await referrals.join(BORIS, token)
    assert joined is not None and joined.state is ReferralState.REFUSED and joined.bonus == 0
    await selling.record_sale(OLGA, boris, 100000)
    assert await points_ledger(db, anna) == [] and await points_ledger(db, boris) == []


async def test_a_known_phone_earns_nothing(
    referrals: ReferralService,
    customers: CustomerService,
    db: Database,
    clock: FixedClock,
    selling: StaffService,
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    async with db.transaction() as repos:  # the owner's base had Vera with this phone
        repos.customers.add(
            Customer(
                tg_user_id=None,
                name="Вера",
                phone="+79990000003",
                source="import",
                marketing_opt_out=True,
                imported_at=clock.now(),
                created_at=clock.now(),
            )
        )
    await _join(customers, VERA, "+79990000003", finish=False)  # recognised by phone
    async with db.reading() as repos:
        vera = (await repos.customers.by_tg_user(VERA)).id  # type: ignore[union-attr]
    joined = await referrals.join(VERA, token)
    assert joined is not None and joined.state is ReferralState.REFUSED
    assert joined.refused == "known" and await points_ledger(db, vera) == []
    await selling.record_sale(OLGA, vera, 100000)
    assert await points_ledger(db, anna) == []


async def test_a_phone_brought_once_is_not_brought_again_after_forget(
    referrals: ReferralService, customers: CustomerService, db: Database
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    await _join(customers, BORIS, "+79990000002", finish=False)
    assert (await referrals.join(BORIS, token)).bonus == 300  # type: ignore[union-attr]
    assert await customers.forget(BORIS)
    async with db.reading() as repos:
        row = (await repos.session.execute(select(Referral.friend_id, Referral.referrer_id))).one()
    assert tuple(row) == (None, anna)  # unlinked, still counted
    await _join(customers, BORIS + 50, "+79990000002", finish=False)  # a new account, same phone
    joined = await referrals.join(BORIS + 50, token)
    assert joined is not None and joined.state is ReferralState.REFUSED and joined.bonus == 0


async def test_a_loop_is_refused(
    referrals: ReferralService, customers: CustomerService, db: Database
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    boris = await _join(customers, BORIS, "+79990000002")
    async with db.transaction() as repos:  # Anna brought Boris
        await repos.referrals.add(
            Referral(
                referrer_id=anna,
                friend_id=boris,
                state=ReferralState.JOINED,
                joined_at=referrals.clock.now(),
            )
        )
    async with db.transaction() as repos:
        refusal = await referrals._refusal(
            repos,
            await repos.customers.get(boris),  # type: ignore[arg-type]
            await repos.customers.get(anna),  # type: ignore[arg-type]
            ANNA,
            referrals.phone_key("+79990000001"),
        )
    assert refusal == "loop"


async def test_the_owner_sees_who_brought_whom(
    referrals: ReferralService, customers: CustomerService, selling: StaffService
) -> None:
    anna = await _join(customers, ANNA, "+79990000001")
    token = await referrals.token(anna)
    boris = await _join(customers, BORIS, "+79990000002", finish=False)
    await referrals.join(BORIS, token)
    await _join(customers, VERA, "+79990000003", finish=False)
    await referrals.join(VERA, token)
    await selling.record_sale(OLGA, boris, 100000)
    period = referrals.period("30")
    assert period is not None
    [line] = await referrals.top(period)
    assert (line.customer_id, line.joined, line.bought) == (anna, 2, 1)


async def test_off_records_nothing(
    db: Database, clock: FixedClock, business: Business, customers: CustomerService
) -> None:
    assert not business.loyalty.referral.enabled  # off unless the file turns it on
    off = ReferralService(db, clock, business, MOSCOW, secret_key=KEY)
    anna = await _join(customers, ANNA, "+79990000001")
    token = await off.token(anna)
    await _join(customers, BORIS, "+79990000002", finish=False)
    assert await off.join(BORIS, token) is None
