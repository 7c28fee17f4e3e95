"""Coupons: unguessable codes, values and expiry from the business file's rules."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from bot.business import CouponRule
from bot.clock import local_day
from bot.db.models import Coupon
from bot.db.repositories import Repos

# No 0/O, 1/I/L: codes are read aloud and typed by staff. 31^8 ≈ 8.5e11 codes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def generate_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def free_code(taken: Callable[[str], Awaitable[bool]], what: str) -> str:
    """A fresh code nobody holds yet (`taken` asks the table): a clash is retried, a code is
    never sequential. For coupons and gift certificates alike."""
    for _ in range(10):
        code = generate_code()
        if not await taken(code):
            return code
    # ten clashes in a row: the alphabet is broken
    raise RuntimeError(f"could not find a free {what} code")  # pragma: no cover


def normalize_code(text: str) -> str:
    """What staff or a customer typed, in the stored form ("k7qm-3xpa" → "K7QM3XPA")."""
    return "".join(c for c in text.upper() if c.isalnum())


def expiry(issued_at: datetime, valid_days: int, tz: tzinfo) -> datetime:
    """Valid through the whole last local day: `valid_days` full days after today."""
    last_day = local_day(issued_at, tz) + timedelta(days=valid_days)
    return datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=tz)


def last_valid_day(coupon: Coupon, tz: tzinfo) -> date:
    return local_day(coupon.expires_at - timedelta(microseconds=1), tz)


@dataclass(frozen=True)
class CouponView:
    """A coupon as a template shows it."""

    id: int
    code: str
    kind: str
    percent: int | None
    amount: int | None
    valid_until: date

    @classmethod
    def of(cls, coupon: Coupon, tz: tzinfo) -> CouponView:
        return cls(
            id=coupon.id,
            code=coupon.code,
            kind=coupon.kind,
            percent=coupon.percent,
            amount=coupon.amount,
            valid_until=last_valid_day(coupon, tz),
        )


async def issue_coupon(
    repos: Repos,
    *,
    customer_id: int | None,
    kind: str,
    rule: CouponRule,
    now: datetime,
    tz: tzinfo,
    last_day: date | None = None,
) -> Coupon:
    """Create a coupon with a fresh code (a clash is retried, it is never sequential); valid
    `rule.valid_days`, or through `last_day` when a date was promised (a broadcast's offer)."""
    code = await free_code(repos.coupons.code_exists, "coupon")
    return await repos.coupons.add(
        Coupon(
            code=code,
            customer_id=customer_id,
            kind=kind,
            percent=rule.percent,
            amount=rule.amount,
            issued_at=now,
            expires_at=expiry(now, rule.valid_days, tz)
            if last_day is None
            else datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=tz),
        )
    )
