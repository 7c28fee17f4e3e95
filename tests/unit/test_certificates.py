"""Gift certificates without Telegram: issue, claim once, spend in parts, never below zero, expiry,
and the races (two claimers, two counters) on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.business import Business, Certificates
from bot.clock import FixedClock
from bot.db.models import Certificate, CertificateUse
from bot.db.repositories import Database
from bot.services.certificates import (
    CertificateOutcome,
    CertificateService,
    GiftCommand,
    expiry,
    gift_code,
    parse_gift,
)
from bot.services.customers import CustomerService
from bot.services.staff import Staff, UsageError

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA, MISHA = Staff(1, "Ольга"), Staff(2, "Миша")
ON = Certificates(enabled=True, expire_months=12)


@pytest.fixture
def certificates(db: Database, clock: FixedClock) -> CertificateService:
    return CertificateService(db, clock, ON, MOSCOW)


async def _customer(db: Database, clock: FixedClock, business: Business, tg: int) -> int:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    view = await customers.consent(tg, name="Анна", username=None, language="ru", source=None)
    return view.id


def test_gift_arguments() -> None:
    assert parse_gift("3000") == GiftCommand(300000, None)
    assert parse_gift("3000 for Anna") == GiftCommand(300000, "Anna")
    assert parse_gift("3 000") == GiftCommand(300, "000")  # the amount is the first word only
    assert parse_gift("2500,50 для Анны Петровой") == GiftCommand(250050, "Анны Петровой")
    assert parse_gift("1000 <b>Мама</b>") == GiftCommand(100000, "<b>Мама</b>")  # escaped later
    for bad, reason in [("", "gift_usage"), ("abc", "amount"), ("-5", "amount")]:
        with pytest.raises(UsageError) as caught:
            parse_gift(bad)
        assert caught.value.reason == reason
    with pytest.raises(UsageError) as caught:
        parse_gift("100 " + "я" * 65)
    assert caught.value.reason == "gift_name_long"


def test_link_payload() -> None:
    assert gift_code("gift_k7qm3xpa") == "K7QM3XPA"
    assert gift_code("src_instagram") is None and gift_code(None) is None


def test_expiry_through_the_last_local_day() -> None:
    issued = datetime(2026, 1, 31, 20, 30, tzinfo=UTC)  # 23:30 in Moscow, 31 January
    assert expiry(issued, 1, MOSCOW) == datetime(2026, 3, 1, tzinfo=MOSCOW)  # through 28 Feb
    assert expiry(issued, 12, MOSCOW) == datetime(2027, 2, 1, tzinfo=MOSCOW)


async def test_issue_claim_and_spend_in_parts(
    certificates: CertificateService, db: Database, clock: FixedClock, business: Business
) -> None:
    anna = await _customer(db, clock, business, 7)
    await _customer(db, clock, business, 8)
    issued = await certificates.issue(OLGA, GiftCommand(300000, "Anna"))
    assert issued.balance_minor == 300000 and not issued.claimed
    assert issued.valid_until == date(2027, 11, 23)

    claimed = await certificates.claim(7, issued.code.lower())
    assert claimed.outcome is CertificateOutcome.CLAIMED and claimed.certificate
    assert (await certificates.claim(7, issued.code)).outcome is CertificateOutcome.YOURS_ALREADY
    other = await certificates.claim(8, issued.code)
    assert other.outcome is CertificateOutcome.ALREADY_CLAIMED and other.certificate is None
    assert (await certificates.claim(8, "NOSUCHCO")).outcome is CertificateOutcome.NOT_FOUND
    assert (await certificates.claim(99, issued.code)).outcome is CertificateOutcome.NOT_FOUND

    first = await certificates.redeem(MISHA, issued.code, 100000)
    assert first.outcome is CertificateOutcome.REDEEMED and first.certificate
    assert first.certificate.balance_minor == 200000
    too_much = await certificates.redeem(MISHA, issued.code, 200001)
    assert too_much.outcome is CertificateOutcome.NOT_ENOUGH and too_much.certificate
    assert too_much.certificate.balance_minor == 200000  # nothing spent
    rest = await certificates.redeem(OLGA, issued.code, 200000)
    assert rest.outcome is CertificateOutcome.REDEEMED and rest.certificate
    assert rest.certificate.balance_minor == 0
    assert (await certificates.redeem(OLGA, issued.code, 1)).outcome is CertificateOutcome.SPENT
    assert (await certificates.redeem(OLGA, "NOPE", 1)).outcome is CertificateOutcome.NOT_FOUND

    async with db.reading() as repos:
        uses = list(await repos.session.scalars(select(CertificateUse.amount_minor)))
        owner = await repos.session.scalar(select(Certificate.customer_id))
    assert sorted(uses) == [100000, 200000] and owner == anna
    assert await certificates.of_customer(7) == []  # spent: no longer shown


async def test_shown_to_its_owner_until_spent(
    certificates: CertificateService, db: Database, clock: FixedClock, business: Business
) -> None:
    await _customer(db, clock, business, 7)
    issued = await certificates.issue(OLGA, GiftCommand(50000, None))
    assert await certificates.of_customer(7) == []
    await certificates.claim(7, issued.code)
    await certificates.redeem(OLGA, issued.code, 20000)
    [shown] = await certificates.of_customer(7)
    assert shown.code == issued.code and shown.balance_minor == 30000


async def test_expired_is_refused_and_unchanged(
    certificates: CertificateService, db: Database, clock: FixedClock, business: Business
) -> None:
    await _customer(db, clock, business, 7)
    issued = await certificates.issue(OLGA, GiftCommand(100000, None))
    start = clock.now()
    clock.set(datetime(2027, 11, 23, 20, 59, tzinfo=UTC))  # 23:59 of its last day in Moscow
    assert (await certificates.redeem(OLGA, issued.code, 1000)).outcome is (
        CertificateOutcome.REDEEMED
    )
    clock.set(start + timedelta(days=366))
    late = await certificates.redeem(OLGA, issued.code, 1000)
    assert late.outcome is CertificateOutcome.EXPIRED
    assert late.certificate and late.certificate.balance_minor == 99000
    assert (await certificates.claim(7, issued.code)).outcome is CertificateOutcome.EXPIRED
    assert await certificates.of_customer(7) == []


async def test_off_issues_nothing(db: Database, clock: FixedClock) -> None:
    off = CertificateService(db, clock, Certificates(enabled=False), MOSCOW)
    with pytest.raises(UsageError) as caught:
        await off.issue(OLGA, GiftCommand(100, None))
    assert caught.value.reason == "gift_off"


async def test_two_claimers_at_once_one_wins(
    certificates: CertificateService, db: Database, clock: FixedClock, business: Business
) -> None:
    for tg in range(10, 15):
        await _customer(db, clock, business, tg)
    issued = await certificates.issue(OLGA, GiftCommand(300000, None))
    services = [CertificateService(db, clock, ON, MOSCOW) for _ in range(5)]
    results = await asyncio.gather(*(s.claim(10 + i, issued.code) for i, s in enumerate(services)))
    outcomes = [r.outcome for r in results]
    assert outcomes.count(CertificateOutcome.CLAIMED) == 1
    assert outcomes.count(CertificateOutcome.ALREADY_CLAIMED) == 4


async def test_two_counters_at_once_spend_once(
    certificates: CertificateService, db: Database, clock: FixedClock
) -> None:
    issued = await certificates.issue(OLGA, GiftCommand(300000, None))
    services = [CertificateService(db, clock, ON, MOSCOW) for _ in range(5)]
    results = await asyncio.gather(
        *(s.redeem(Staff(i, f"staff {i}"), issued.code, 200000) for i, s in enumerate(services))
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count(CertificateOutcome.REDEEMED) == 1
    assert outcomes.count(CertificateOutcome.NOT_ENOUGH) == 4
    async with db.reading() as repos:
        uses = list(await repos.session.scalars(select(CertificateUse.amount_minor)))
    assert uses == [200000]


async def test_erasure_blanks_owner_and_name_and_keeps_it_claimed(
    certificates: CertificateService, db: Database, clock: FixedClock, business: Business
) -> None:
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=b"test-secret-key")
    await _customer(db, clock, business, 7)
    await _customer(db, clock, business, 8)
    issued = await certificates.issue(OLGA, GiftCommand(100000, "Анна Петрова"))
    await certificates.claim(7, issued.code)
    assert await customers.forget(7)
    async with db.reading() as repos:
        row = (
            await repos.session.execute(
                select(Certificate.customer_id, Certificate.for_name, Certificate.claimed_at)
            )
        ).one()
    assert row.customer_id is None and row.for_name is None and row.claimed_at is not None
    assert (await certificates.claim(8, issued.code)).outcome is CertificateOutcome.ALREADY_CLAIMED
    spent = await certificates.redeem(OLGA, issued.code, 40000)  # what was paid for still holds
    assert spent.certificate and spent.certificate.balance_minor == 60000
