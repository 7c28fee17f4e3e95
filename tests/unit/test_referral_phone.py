"""The friend of a referral is recorded, and their bonus credited, in the same transaction as
their phone: a failure after the phone's write leaves neither, and a phone saved has its bonus
(both databases)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Customer, LoyaltyEntry, Referral, ReferralState
from bot.db.repositories import Database, Repos
from bot.events import Credited, Events, PhoneShared
from bot.features import Features
from bot.outbox.planners import Planners
from bot.services.customers import CustomerService
from bot.services.referrals import FRIEND_BONUS, ReferralService

MOSCOW = ZoneInfo("Europe/Moscow")
KEY = b"test-secret-key"
ANNA, BORIS = 101, 102


def _wired(
    db: Database, clock: FixedClock, business: Business, *, crash: bool = False
) -> tuple[CustomerService, ReferralService]:
    """The customers and referrals as the app wires them; `crash`: a subscriber after the
    referral's fails (a fault after the phone and the friend were written)."""
    events = Events()
    referrals = ReferralService(db, clock, business, MOSCOW, secret_key=KEY)
    referrals.register(Features(events, Planners(db, clock, business, MOSCOW)))
    if crash:

        async def boom(repos: Repos, event: PhoneShared) -> Credited | None:
            raise RuntimeError("the process dies here")

        events.on_phone_shared(boom)
    return CustomerService(db, clock, business, MOSCOW, events, secret_key=KEY), referrals


async def _state(db: Database, tg: int) -> tuple[str | None, int, int]:
    """(their phone, referral rows of theirs, their ledger's points)."""
    async with db.reading() as repos:
        customer = await repos.customers.by_tg_user(tg)
        assert customer is not None
        referrals = await repos.session.scalar(
            select(func.count()).select_from(Referral).where(Referral.friend_id == customer.id)
        )
        points = await repos.loyalty.balance(customer.id)
        return customer.phone, int(referrals or 0), points


async def _annas_link(customers: CustomerService, referrals: ReferralService) -> tuple[int, str]:
    """Анна joins with her phone: her id, and the token of her link for a friend."""
    await customers.consent(ANNA, name="Анна", username=None, language="ru", source=None)
    await customers.set_phone(ANNA, "+79990000001")
    anna = await customers.find(ANNA)
    assert anna is not None
    return anna.id, await referrals.token(anna.id)


async def test_a_failure_after_the_phone_leaves_neither_the_phone_nor_the_bonus(
    db: Database, clock: FixedClock, friendly: Business
) -> None:
    customers, referrals = _wired(db, clock, friendly)
    anna_id, token = await _annas_link(customers, referrals)

    crashing, _ = _wired(db, clock, friendly, crash=True)
    await crashing.consent(BORIS, name="Борис", username=None, language="ru", source=None)
    with pytest.raises(RuntimeError):
        await crashing.set_phone(BORIS, "+79990000002", ref=token)
    assert await _state(db, BORIS) == (None, 0, 0)  # rolled back together

    saved = await customers.set_phone(BORIS, "+79990000002", ref=token)  # shared again
    assert saved.credited == (Credited(FRIEND_BONUS, 300),)
    assert await _state(db, BORIS) == ("+79990000002", 1, 300)  # committed together
    async with db.reading() as repos:
        boris = await repos.customers.by_tg_user(BORIS)
        assert boris is not None
        referral = await repos.referrals.of_friend(boris.id)
        assert referral and referral.state == ReferralState.JOINED
        assert referral.referrer_id == anna_id
    again = await customers.set_phone(BORIS, "+79990000002", ref=token)
    assert again.credited == ()  # recorded once
    assert await _state(db, BORIS) == ("+79990000002", 1, 300)


async def test_no_link_or_no_program_credits_nothing_with_the_phone(
    db: Database, clock: FixedClock, friendly: Business, business: Business
) -> None:
    customers, referrals = _wired(db, clock, friendly)
    _, token = await _annas_link(customers, referrals)
    await customers.consent(BORIS, name="Борис", username=None, language="ru", source=None)
    assert (await customers.set_phone(BORIS, "+79990000002")).credited == ()  # no link
    off = business.model_copy(
        update={
            "loyalty": friendly.loyalty.model_copy(
                update={"referral": friendly.loyalty.referral.model_copy(update={"enabled": False})}
            )
        }
    )
    closed, _ = _wired(db, clock, off)
    assert (await closed.set_phone(BORIS, "+79990000002", ref=token)).credited == ()
    async with db.reading() as repos:
        assert await repos.session.scalar(select(func.count()).select_from(Referral)) == 0
        assert await repos.session.scalar(select(func.count()).select_from(LoyaltyEntry)) == 0
        assert await repos.session.scalar(select(func.count()).select_from(Customer)) == 2
