"""The customer service with a fixed clock, on each database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.business import Business, CouponRule
from bot.clock import FixedClock
from bot.db.repositories import Database
from bot.services.birthdays import Birthday
from bot.services.coupons import CODE_ALPHABET, CODE_LENGTH, expiry, generate_code, normalize_code
from bot.services.customers import CustomerNotFound, CustomerService, WelcomeOutcome, clean_name

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
def service(db: Database, clock: FixedClock, business: Business) -> CustomerService:
    return CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")


async def _onboarded(service: CustomerService, tg_user_id: int, phone: str = "+79161234567"):  # type: ignore[no-untyped-def]
    await service.consent(tg_user_id, name="Анна", username=None, language="ru", source=None)
    await service.set_phone(tg_user_id, phone)
    return await service.finish_onboarding(tg_user_id)


def test_codes_are_random_and_readable() -> None:
    codes = {generate_code() for _ in range(5000)}
    assert len(codes) == 5000
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01OIL") & set(CODE_ALPHABET)
    assert normalize_code(" k7qm-3xpa ") == "K7QM3XPA"


def test_coupon_lasts_through_its_last_local_day() -> None:
    # 23:30 in Moscow on 23 November is still 23 November there, whatever UTC says.
    issued = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    assert expiry(issued, 30, MOSCOW) == datetime(2026, 12, 24, 0, 0, tzinfo=MOSCOW)


async def test_consent_is_idempotent_and_recorded_once(
    service: CustomerService, db: Database
) -> None:
    first = await service.consent(7, name="Анна", username="a", language="ru", source="vk")
    second = await service.consent(7, name="Other", username="b", language="en", source="ig")
    assert first == second
    profile = await service.profile(7)
    assert profile and profile.consent_version == "2026-11-01" and profile.name == "Анна"


async def test_welcome_coupon_once_per_customer(
    service: CustomerService, clock: FixedClock
) -> None:
    first = await _onboarded(service, 7)
    assert first.outcome is WelcomeOutcome.ISSUED and first.coupon
    assert first.coupon.valid_until.isoformat() == "2026-12-23"
    again = await service.finish_onboarding(7)
    assert again.outcome is WelcomeOutcome.ALREADY_YOURS and again.coupon == first.coupon


async def test_same_phone_on_another_account_gets_none(service: CustomerService) -> None:
    await _onboarded(service, 7)
    other = await _onboarded(service, 8)
    assert other.outcome is WelcomeOutcome.CLAIMED_ELSEWHERE and other.coupon is None
    assert await service.active_coupons(8) == []


async def test_concurrent_finishes_give_one_coupon(
    service: CustomerService, db: Database, business: Business, clock: FixedClock
) -> None:
    """Two accounts with one phone finish at the same instant, through two services (two
    processes would look the same to the database): exactly one coupon."""
    twin = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    for tg in (7, 8):
        await service.consent(tg, name="Анна", username=None, language="ru", source=None)
        await service.set_phone(tg, "+79161234567")
    results = await asyncio.gather(
        service.finish_onboarding(7),
        twin.finish_onboarding(8),
        service.finish_onboarding(7),
        twin.finish_onboarding(8),
    )
    issued = [r for r in results if r.outcome is WelcomeOutcome.ISSUED]
    assert len(issued) == 1
    assert len(await service.active_coupons(7)) + len(await service.active_coupons(8)) == 1


async def test_erasure_keeps_no_personal_data(service: CustomerService) -> None:
    await _onboarded(service, 7)
    await service.set_birthday(7, Birthday(14, 3, 1990))
    assert await service.forget(7) is True
    assert await service.find(7) is None and await service.profile(7) is None
    assert await service.forget(7) is False
    with pytest.raises(CustomerNotFound):
        await service.set_phone(7, "+79160000000")
    again = await _onboarded(service, 7, phone="+79035556677")
    assert again.outcome is WelcomeOutcome.CLAIMED_ELSEWHERE


async def test_expired_coupons_are_not_active(service: CustomerService, clock: FixedClock) -> None:
    await _onboarded(service, 7)
    clock.advance(timedelta(days=30))
    assert len(await service.active_coupons(7)) == 1  # 22 December: still valid
    clock.advance(timedelta(days=1, hours=12))
    assert await service.active_coupons(7) == []


def test_names() -> None:
    assert clean_name("  Анна   Петровна ") == "Анна Петровна"
    assert clean_name("<b>Ann</b> & Co") == "<b>Ann</b> & Co"
    for bad in ("", "   ", "/start", "x" * 65, "Ann\u202eevil", "a\x00b"):
        assert clean_name(bad) is None


def test_coupon_rule_needs_one_value() -> None:
    with pytest.raises(ValueError):
        CouponRule(percent=10, amount=100, valid_days=3)
    with pytest.raises(ValueError):
        CouponRule(valid_days=3)
