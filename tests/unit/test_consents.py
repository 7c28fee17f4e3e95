"""The two consents in the customer service, and what the outbox policy makes of them, on each
database: data consent with the privacy version, offers with their own, each a row saying how."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import Consent, Customer
from bot.db.repositories import Database
from bot.outbox import MARKETING, SERVICE
from bot.outbox.policy import PRIVACY_HOLD, Decision, Policy
from bot.services.customers import CustomerService, WelcomeOutcome
from tests.e2e.helpers import customer_of

MOSCOW = ZoneInfo("Europe/Moscow")


def service_for(db: Database, clock: FixedClock, business: Business) -> CustomerService:
    return CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")


@pytest.fixture
def service(db: Database, clock: FixedClock, business: Business) -> CustomerService:
    return service_for(db, clock, business)


@pytest.fixture
def gift_with_offers(business: Business) -> Business:
    welcome = business.coupons.welcome.model_copy(update={"requires_offers_consent": True})
    return business.model_copy(
        update={"coupons": business.coupons.model_copy(update={"welcome": welcome})}
    )


async def rows(db: Database, tg_user_id: int) -> list[tuple[str, bool, str, str]]:
    async with db.transaction() as repos:
        customer = await repos.customers.by_tg_user(tg_user_id)
        assert customer is not None
        query = select(Consent).where(Consent.customer_id == customer.id).order_by(Consent.id)
        found = await repos.session.scalars(query)
        return [(c.kind, c.granted, c.version, c.via) for c in found]


async def row(db: Database, tg_user_id: int) -> Customer:
    customer = await customer_of(db, tg_user_id)
    assert customer is not None
    return customer


async def started(service: CustomerService, tg: int) -> None:
    await service.consent(tg, name="Анна", username=None, language="ru", source=None)
    await service.set_phone(tg, f"+7916{tg:07d}")


async def test_the_data_consent_alone_gives_no_offers(
    service: CustomerService, db: Database
) -> None:
    view = await service.consent(7, name="Анна", username=None, language="ru", source=None)
    assert view.data_consent_version == "2026-11-01" and not view.marketing
    assert await rows(db, 7) == [("personal_data", True, "2026-11-01", "button")]
    customer = await row(db, 7)
    assert customer.marketing_opt_out and customer.data_consent_version == "2026-11-01"


@pytest.mark.parametrize("granted", [True, False])
async def test_the_answer_about_offers_is_its_own_row_and_ends_onboarding(
    service: CustomerService, db: Database, clock: FixedClock, granted: bool
) -> None:
    await started(service, 7)
    clock.advance(timedelta(minutes=2))
    result = await service.answer_offers(7, granted)
    assert result.outcome is WelcomeOutcome.ISSUED, "the default rule: the coupon either way"
    assert await rows(db, 7) == [
        ("personal_data", True, "2026-11-01", "button"),
        ("marketing", granted, "1", "button"),
    ]
    customer = await row(db, 7)
    assert customer.marketing_opt_out is not granted and customer.onboarded_at is not None
    profile = await service.profile(7)
    assert profile and profile.offers_at is not None and profile.marketing is granted


async def test_a_gift_that_comes_with_offers_waits_for_them_and_comes_once(
    db: Database, clock: FixedClock, gift_with_offers: Business
) -> None:
    service = service_for(db, clock, gift_with_offers)
    await started(service, 7)
    result = await service.answer_offers(7, False)
    assert (result.outcome, result.coupon) == (WelcomeOutcome.NEEDS_OFFERS, None)
    assert (await row(db, 7)).onboarded_at is not None
    assert await service.active_coupons(7) == []

    resumed = await service.allow_offers(7)
    assert resumed.changed and resumed.welcome is not None
    assert [c.id for c in await service.active_coupons(7)] == [resumed.welcome.id]
    assert await service.set_marketing(7, False)
    again = await service.allow_offers(7)
    assert again.changed and again.welcome is None, "once"
    assert len(await service.active_coupons(7)) == 1
    assert [r[1] for r in await rows(db, 7) if r[0] == "marketing"] == [False, True, False, True]

    await started(service, 8)
    assert (await service.answer_offers(8, True)).outcome is WelcomeOutcome.ISSUED


async def test_offers_resumed_before_onboarding_ends_give_nothing_early(
    db: Database, clock: FixedClock, gift_with_offers: Business
) -> None:
    service = service_for(db, clock, gift_with_offers)
    await started(service, 7)
    early = await service.allow_offers(7)  # /resume in the middle of onboarding
    assert early.changed and early.welcome is None
    assert (await service.answer_offers(7, True)).outcome is WelcomeOutcome.ISSUED


async def test_a_new_privacy_text_is_agreed_to_once(
    db: Database, clock: FixedClock, business: Business
) -> None:
    old = service_for(db, clock, business)
    await started(old, 7)
    await old.answer_offers(7, True)
    new = service_for(db, clock, business.model_copy(update={"privacy_version": "2027-01-01"}))
    view = await new.find(7)
    assert view and view.data_consent_version == "2026-11-01"
    assert await new.reconsent(7)
    assert not await new.reconsent(7), "a second tap records nothing"
    assert (await rows(db, 7))[-1] == ("personal_data", True, "2027-01-01", "button")
    assert (await row(db, 7)).data_consent_version == "2027-01-01"


async def test_the_policy_holds_offers_until_the_current_privacy_text_is_agreed_to(
    business: Business, clock: FixedClock
) -> None:
    now = clock.now().replace(hour=9)  # 12:00 in Moscow: not quiet
    policy = Policy(business.marketing, MOSCOW, "2027-01-01")
    behind = Customer(tg_user_id=7, marketing_opt_out=False, data_consent_version="2026-11-01")
    later = now + timedelta(days=2)
    held = policy.judge(kind=MARKETING, now=now, not_after=later, customer=behind)
    assert (held.decision, held.until, held.reason) == (
        Decision.DEFER,
        now + PRIVACY_HOLD,
        "privacy_outdated",
    )
    soon = policy.judge(
        kind=MARKETING, now=now, not_after=now + timedelta(minutes=5), customer=behind
    )
    assert soon.decision is Decision.EXPIRE
    assert policy.judge(kind=SERVICE, now=now, not_after=later, customer=behind).decision is (
        Decision.SEND
    )
    current = Customer(tg_user_id=7, marketing_opt_out=False, data_consent_version="2027-01-01")
    assert policy.judge(kind=MARKETING, now=now, not_after=later, customer=current).decision is (
        Decision.SEND
    )
    no_consent = Customer(tg_user_id=7, marketing_opt_out=False, data_consent_version=None)
    assert policy.judge(kind=MARKETING, now=now, not_after=later, customer=no_consent).decision is (
        Decision.DEFER
    )
    opted_out = Customer(tg_user_id=7, marketing_opt_out=True, data_consent_version="2027-01-01")
    skipped = policy.judge(kind=MARKETING, now=now, not_after=later, customer=opted_out)
    assert (skipped.decision, skipped.reason) == (Decision.SKIP, "opted_out")
