"""Gift certificates: issued by staff for an amount, claimed by whoever opens the link first,
spent at the counter in parts with /redeem until nothing is left or they expire.

The balance is never stored: it is the amount less the uses (append-only), read with the
certificate's row locked, so two staff spending it at once spend it once and it never goes below
zero. A certificate is a bearer instrument at the counter: its code is enough to spend it, claimed
or not (the claim is what shows it in the customer's /profile)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Certificates
from bot.clock import Clock, local_day
from bot.db.models import Certificate, CertificateUse, StaffAction
from bot.db.repositories import Database, Repos
from bot.services.coupons import free_code, normalize_code
from bot.services.staff import Staff, UsageError, parse_amount

GIFT_PREFIX = "gift_"  # the start payload of a certificate's link: t.me/<bot>?start=gift_<code>
MAX_FOR_NAME = 64
FOR_WORDS = ("for", "для")  # "/gift 3000 for Anna", "/gift 3000 для Анны"


class CertificateOutcome(StrEnum):
    ISSUED = "issued"
    CLAIMED = "claimed"
    YOURS_ALREADY = "yours_already"
    ALREADY_CLAIMED = "already_claimed"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    REDEEMED = "redeemed"
    NOT_ENOUGH = "not_enough"  # more than its balance: nothing spent
    SPENT = "spent"  # nothing left on it


@dataclass(frozen=True)
class CertificateView:
    """A certificate as a template shows it."""

    code: str
    amount_minor: int
    balance_minor: int
    for_name: str | None
    valid_until: date
    claimed: bool
    expired: bool

    @classmethod
    def of(
        cls, certificate: Certificate, spent: int, now: datetime, tz: ZoneInfo
    ) -> CertificateView:
        return cls(
            code=certificate.code,
            amount_minor=certificate.amount_minor,
            balance_minor=certificate.amount_minor - spent,
            for_name=certificate.for_name,
            valid_until=local_day(certificate.expires_at - timedelta(microseconds=1), tz),
            claimed=certificate.claimed_at is not None,
            expired=now >= certificate.expires_at,
        )


@dataclass(frozen=True)
class CertificateResult:
    outcome: CertificateOutcome
    code: str
    certificate: CertificateView | None = None
    used_minor: int = 0  # what this redemption took


@dataclass(frozen=True)
class GiftCommand:
    amount_minor: int
    for_name: str | None


def parse_gift(args: str) -> GiftCommand:
    """ "3000", "3000 for Anna", "3 000,50 для Анны" → the amount and the name; UsageError else."""
    words = args.split()
    if not words:
        raise UsageError("gift_usage")
    amount_minor = parse_amount(words[0])
    rest = words[1:]
    if rest and rest[0].casefold() in FOR_WORDS:
        rest = rest[1:]
    for_name = " ".join(rest) or None
    if for_name is not None and len(for_name) > MAX_FOR_NAME:
        raise UsageError("gift_name_long", limit=MAX_FOR_NAME)
    return GiftCommand(amount_minor, for_name)


def gift_code(payload: str | None) -> str | None:
    """The certificate code of a `gift_<code>` start payload, None for any other payload."""
    if payload is None or not payload.startswith(GIFT_PREFIX):
        return None
    return normalize_code(payload.removeprefix(GIFT_PREFIX))


def expiry(issued_at: datetime, months: int, tz: ZoneInfo) -> datetime:
    """Valid through the local day `months` months after the day of issue."""
    day = local_day(issued_at, tz)
    year, month = divmod(day.month - 1 + months, 12)
    first = date(day.year + year, month + 1, 1)
    days_in_month = ((first + timedelta(days=32)).replace(day=1) - first).days
    last_day = first.replace(day=min(day.day, days_in_month))  # 31 Jan + 1 month: 28/29 Feb
    return datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=tz)


def _audit(
    repos: Repos,
    now: datetime,
    staff: Staff,
    action: str,
    customer_id: int | None,
    **details: Any,
) -> None:
    repos.audit.record(
        StaffAction(
            at=now,
            staff_id=staff.id,
            staff_name=staff.name,
            action=action,
            customer_id=customer_id,
            details=details,
        )
    )


class CertificateService:
    def __init__(self, db: Database, clock: Clock, rules: Certificates, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.rules = rules
        self.tz = tz

    @property
    def enabled(self) -> bool:
        return self.rules.enabled

    async def issue(self, staff: Staff, gift: GiftCommand) -> CertificateView:
        """A new certificate with a fresh unguessable code; UsageError when they are off."""
        if not self.rules.enabled:
            raise UsageError("gift_off")
        now = self.clock.now()
        async with self.db.transaction() as repos:
            code = await free_code(repos.certificates.code_exists, "certificate")
            certificate = await repos.certificates.add(
                Certificate(
                    code=code,
                    amount_minor=gift.amount_minor,
                    for_name=gift.for_name,
                    issued_by_id=staff.id,
                    issued_by_name=staff.name,
                    expires_at=expiry(now, self.rules.expire_months, self.tz),
                    created_at=now,
                )
            )
            # the name stays on the certificate only (erasure reaches it there, not in the audit)
            _audit(repos, now, staff, "gift", None, code=code, amount_minor=gift.amount_minor)
            return CertificateView.of(certificate, 0, now, self.tz)

    async def claim(self, tg_user_id: int, code_text: str) -> CertificateResult:
        """The customer (who consented) who opened the link first owns it; anyone after is told
        it is taken. An expired or unknown code changes nothing."""
        code = normalize_code(code_text)
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            certificate = await repos.certificates.by_code(code) if code else None
            if certificate is None or customer is None or customer.erased_at is not None:
                return CertificateResult(CertificateOutcome.NOT_FOUND, code or code_text)
            if certificate.claimed_at is None and now < certificate.expires_at:
                if await repos.certificates.claim(certificate.id, customer.id, now):
                    await repos.certificates.reload(certificate)
                    spent = await repos.certificates.spent(certificate.id)
                    view = CertificateView.of(certificate, spent, now, self.tz)
                    return CertificateResult(CertificateOutcome.CLAIMED, code, view)
                await repos.certificates.reload(certificate)  # someone else was first
            spent = await repos.certificates.spent(certificate.id)
            view = CertificateView.of(certificate, spent, now, self.tz)
            if certificate.customer_id == customer.id:
                return CertificateResult(CertificateOutcome.YOURS_ALREADY, code, view)
            if certificate.claimed_at is not None:
                # not theirs: nothing about it (the amount, the name) is shown
                return CertificateResult(CertificateOutcome.ALREADY_CLAIMED, code)
            return CertificateResult(CertificateOutcome.EXPIRED, code, view)

    async def exists(self, code_text: str) -> bool:
        """Whether a code is a certificate's (so /redeem without an amount can ask for one)."""
        code = normalize_code(code_text)
        async with self.db.reading() as repos:
            return bool(code) and await repos.certificates.code_exists(code)

    async def redeem(self, staff: Staff, code_text: str, amount_minor: int) -> CertificateResult:
        """Spend `amount_minor` of it: refused (nothing spent) when expired, spent, or more than
        what is left. The row is locked while the balance is read and the use written."""
        code = normalize_code(code_text)
        now = self.clock.now()
        async with self.db.transaction() as repos:
            certificate = await repos.certificates.by_code(code, for_update=True) if code else None
            if certificate is None:
                return CertificateResult(CertificateOutcome.NOT_FOUND, code or code_text)
            spent = await repos.certificates.spent(certificate.id)
            view = CertificateView.of(certificate, spent, now, self.tz)
            if view.expired:
                return CertificateResult(CertificateOutcome.EXPIRED, code, view)
            if view.balance_minor <= 0:
                return CertificateResult(CertificateOutcome.SPENT, code, view)
            if amount_minor > view.balance_minor:
                return CertificateResult(CertificateOutcome.NOT_ENOUGH, code, view, amount_minor)
            repos.certificates.use(
                CertificateUse(
                    certificate_id=certificate.id,
                    amount_minor=amount_minor,
                    at=now,
                    staff_id=staff.id,
                    staff_name=staff.name,
                )
            )
            _audit(
                repos,
                now,
                staff,
                "certificate",
                certificate.customer_id,
                code=code,
                amount_minor=amount_minor,
            )
            view = CertificateView.of(certificate, spent + amount_minor, now, self.tz)
            return CertificateResult(CertificateOutcome.REDEEMED, code, view, amount_minor)

    async def of_customer(self, tg_user_id: int) -> list[CertificateView]:
        """A customer's certificates that still hold something and have not expired."""
        now = self.clock.now()
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            if customer is None or customer.erased_at is not None:
                return []
            rows = await repos.certificates.of_customer(customer.id)
            views = [CertificateView.of(c, spent, now, self.tz) for c, spent in rows]
        return [v for v in views if v.balance_minor > 0 and not v.expired]
