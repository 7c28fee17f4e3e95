"""Customers: onboarding for a welcome coupon, profile, marketing opt-out, and erasure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from bot.business import Business
from bot.clock import Clock, local_today
from bot.db.models import ConsentKind, ConsentVia, Customer, Erasure, ErasureReason
from bot.db.repositories import Database, Repos
from bot.events import CustomerErased, Events, PhoneShared
from bot.services.birthdays import Birthday
from bot.services.coupons import CouponView, issue_coupon
from bot.services.recognition import PhoneSaved, account_row, save_phone

PERSONAL_DATA = ConsentKind.PERSONAL_DATA
MARKETING = ConsentKind.MARKETING
BUTTON, FORGET = ConsentVia.BUTTON, ConsentVia.FORGET
WELCOME = "welcome"
MAX_NAME_LENGTH = 64
KEYED_PREFIX = "k1:"  # fingerprints keyed with the secret key; plain SHA-256 hex came before
_UNKEYED = re.compile(r"[0-9a-f]{64}")
REKEY_BATCH = 1000

log = logging.getLogger("carebot")


class CustomerNotFound(LookupError):
    """The customer is gone (erased) or never consented: the caller starts over."""


def welcome_key(secret_key: bytes) -> bytes:
    """The key of welcome-claim fingerprints, derived from the secret key for this use only."""
    return hmac.new(secret_key, b"carebot welcome-claim fingerprints", hashlib.sha256).digest()


def keyed_fingerprint(key: bytes, unkeyed: str) -> str:
    """A keyed fingerprint from the plain SHA-256 hex that carebot stored before it had a key.

    Keying the old hash (rather than the phone) lets stored rows be re-keyed without knowing
    the phones. Without the key a phone cannot be tested against it: there are only about
    10^10 mobile numbers, so a plain hash of one is reversed in seconds.
    """
    digest = hmac.new(key, unkeyed.encode(), hashlib.sha256).digest()
    return KEYED_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def welcome_fingerprints(key: bytes, tg_user_id: int, phone: str | None) -> list[str]:
    """Fingerprints that say "this account / this phone already got a welcome coupon".

    They outlive `/forget` on purpose so erasure cannot be used to farm coupons; they are
    keyed hashes (HMAC-SHA256 with a key kept outside the database), not the number itself.
    """
    values = [f"tg:{tg_user_id}"] + ([f"phone:{phone}"] if phone else [])
    return [
        keyed_fingerprint(key, hashlib.sha256(f"carebot-welcome|{v}".encode()).hexdigest())
        for v in values
    ]


# Invisible characters that belong inside a name: the zero-width non-joiner and joiner (Persian
# and Indic spelling, emoji families). Variation selectors are marks, not format characters.
_JOINERS = "\u200c\u200d"


def clean_name(text: str) -> str | None:
    """A name as the customer typed it, tidied; None when it cannot be a name.

    Joiners are kept inside words (dropped at their edges, where they join nothing); any other
    control or format character is refused: bidi overrides and isolates, zero-width spaces, soft
    hyphens, tag characters and the like make a name look unlike what it is.
    """
    name = " ".join(word.strip(_JOINERS) for word in text.split() if word.strip(_JOINERS))
    if not name or len(name) > MAX_NAME_LENGTH or name.startswith("/"):
        return None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") and c not in _JOINERS for c in name):
        return None
    return name


class WelcomeOutcome(StrEnum):
    ISSUED = "issued"
    ALREADY_YOURS = "already_yours"  # this customer got it before: show it again
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # this phone or account got one on another record
    NEEDS_OFFERS = "needs_offers"  # the rule gives it with offers only, and they said no
    KNOWN_CUSTOMER = "known_customer"  # they have visits, and the rule keeps it for newcomers


@dataclass(frozen=True)
class WelcomeResult:
    outcome: WelcomeOutcome
    coupon: CouponView | None


@dataclass(frozen=True)
class Profile:
    name: str | None
    phone: str | None
    birthday: Birthday | None
    language: str
    consent_version: str | None
    consent_at: datetime | None
    marketing: bool
    active_coupons: int
    offers_at: datetime | None = None  # when they last answered about offers (None: not yet)


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str | None
    language: str
    onboarded: bool
    marketing: bool
    blocked: bool = False
    # The privacy version of their current data consent: not the business's one, and every
    # message of theirs is answered with the consent question again (handlers/middlewares.py).
    data_consent_version: str | None = None


@dataclass(frozen=True)
class OffersChange:
    """What /resume (or /stop) changed; `welcome` is the welcome gift that waited for offers."""

    changed: bool
    welcome: CouponView | None = None


def customer_view(customer: Customer) -> CustomerView:
    """What handlers are told about a customer (a read that found the row hands it here)."""
    return CustomerView(
        id=customer.id,
        name=customer.name,
        language=customer.language,
        onboarded=customer.onboarded_at is not None,
        marketing=not customer.marketing_opt_out,
        blocked=customer.blocked_at is not None,
        data_consent_version=customer.data_consent_version,
    )


class CustomerService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        business: Business,
        tz: ZoneInfo,
        events: Events | None = None,
        *,
        secret_key: bytes,
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.events = events or Events()
        self._welcome_key = welcome_key(secret_key)

    async def rekey_welcome_claims(self, *, new_key: bool = False) -> int:
        """Start-up: fingerprints stored as plain SHA-256 (before keys) become keyed ones, so
        the database no longer holds hashes a phone can be guessed from. Idempotent: keyed
        rows are never touched again. Returns how many rows were re-keyed."""
        if new_key:
            async with self.db.reading() as repos:
                if await repos.welcome_claims.any_keyed():
                    log.warning(
                        "a new key file was made, but the welcome claims were keyed with another key: "
                        "restore the old key file, or customers who got a welcome coupon can get another"
                    )
        rekeyed, after = 0, ""
        while True:
            async with self.db.transaction() as repos:
                batch = await repos.welcome_claims.unkeyed(after, REKEY_BATCH)
                for fingerprint in batch:
                    if _UNKEYED.fullmatch(fingerprint):
                        await repos.welcome_claims.rekey(
                            fingerprint, keyed_fingerprint(self._welcome_key, fingerprint)
                        )
                        rekeyed += 1
            if len(batch) < REKEY_BATCH:
                break
            after = batch[-1]
        if rekeyed:
            log.info("welcome claims keyed with the secret key rows=%s", rekeyed)
        return rekeyed

    async def find(self, tg_user_id: int) -> CustomerView | None:
        async with self.db.reading(snapshot=False) as repos:  # every update asks: one statement
            customer = await repos.customers.by_tg_user(tg_user_id)
            return customer_view(customer) if customer else None

    async def consent(
        self,
        tg_user_id: int,
        *,
        name: str | None,
        username: str | None,
        language: str,
        source: str | None,
        offers: bool | None = None,
    ) -> CustomerView:
        """The customer agreed to the processing of their data: only now is anything about them
        stored. Idempotent. Offers are a separate consent, asked at the end of onboarding
        (`answer_offers`); `offers` records that answer at once (a customer made in one go)."""
        now = self.clock.now()
        try:
            async with self.db.transaction() as repos:
                existing = await repos.customers.by_tg_user(tg_user_id)
                if existing:
                    return customer_view(existing)
                cleaned = clean_name(name or "")
                customer = Customer(
                    tg_user_id=tg_user_id,
                    username=username,
                    name=cleaned,
                    name_folded=cleaned.casefold() if cleaned else None,
                    language=language,
                    source=source,
                    marketing_opt_out=not offers,  # no offers consent until they say yes
                    data_consent_version=self.business.privacy_version,
                    created_at=now,
                )
                repos.customers.add(customer)
                await repos.customers.flush()
                version = self.business.privacy_version
                repos.consents.record(customer.id, PERSONAL_DATA, True, version, now, via=BUTTON)
                if offers is not None:
                    self._record_offers(repos, customer, offers, now, BUTTON)
                return customer_view(customer)
        except IntegrityError:  # a second tap in another process won the insert
            found = await self.find(tg_user_id)
            if found is None:
                raise
            return found

    def _record_offers(
        self, repos: Repos, customer: Customer, granted: bool, now: datetime, via: ConsentVia
    ) -> None:
        """A consent to offers given or withdrawn: the row that proves it, and the fast flag."""
        customer.marketing_opt_out = not granted
        version = self.business.offers_version
        repos.consents.record(customer.id, MARKETING, granted, version, now, via=via)

    async def reconsent(self, tg_user_id: int) -> bool:
        """They agreed to the current privacy text (after it changed); False: already had."""
        now = self.clock.now()
        version = self.business.privacy_version
        async with self.db.transaction() as repos:
            customer = await self._customer(repos, tg_user_id)
            if customer.data_consent_version == version:
                return False
            customer.data_consent_version = version
            repos.consents.record(customer.id, PERSONAL_DATA, True, version, now, via=BUTTON)
            return True

    async def answer_offers(self, tg_user_id: int, granted: bool) -> WelcomeResult:
        """Onboarding's last question: their answer about offers is recorded, onboarding ends
        and the welcome coupon is given (if its rule wants offers, only to a "yes"): one write."""
        try:
            return await self._finish(tg_user_id, offers=granted)
        except IntegrityError:
            return await self._finish(tg_user_id, offers=granted)

    async def _customer(self, repos: Repos, tg_user_id: int) -> Customer:
        customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
        if customer is None:
            raise CustomerNotFound(tg_user_id)
        return customer

    async def mark_reachable(self, tg_user_id: int) -> None:
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
            if customer is not None:
                customer.blocked_at = None

    async def set_phone(self, tg_user_id: int, phone: str, *, ref: str | None = None) -> PhoneSaved:
        """Their own phone; a customer imported with it becomes them (bot/services/recognition.py).
        What joining earns (`PhoneShared`'s subscribers: the welcome bonus, the bonus of a friend
        who came by the link `ref`) is credited in the same transaction. Retried once when a
        concurrent join took the same claim at that instant: the retry sees it taken."""
        try:
            return await self._set_phone(tg_user_id, phone, ref)
        except IntegrityError:
            return await self._set_phone(tg_user_id, phone, ref)

    async def _set_phone(self, tg_user_id: int, phone: str, ref: str | None) -> PhoneSaved:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await account_row(repos, tg_user_id)
            if customer is None:
                raise CustomerNotFound(tg_user_id)
            customer, saved = await save_phone(repos, customer, phone)
            await repos.customers.flush()
            event = PhoneShared(customer.id, tg_user_id, phone, saved.recognised, ref, now)
            credited = await self.events.phone_shared(repos, event)
            return replace(saved, credited=tuple(credited)) if credited else saved

    async def set_birthday(self, tg_user_id: int, birthday: Birthday | None) -> None:
        async with self.db.transaction() as repos:
            customer = await self._customer(repos, tg_user_id)
            customer.birth_day = birthday.day if birthday else None
            customer.birth_month = birthday.month if birthday else None
            customer.birth_year = birthday.year if birthday else None

    async def set_name(self, tg_user_id: int, name: str) -> None:
        async with self.db.transaction() as repos:
            customer = await self._customer(repos, tg_user_id)
            customer.name = name
            customer.name_folded = name.casefold()

    async def finish_onboarding(self, tg_user_id: int) -> WelcomeResult:
        """Mark onboarding done and give the welcome coupon, once per account and per phone."""
        try:
            return await self._finish(tg_user_id)
        except IntegrityError:
            # Another process claimed the same fingerprint at the same instant; the retry
            # sees its claim and answers accordingly.
            return await self._finish(tg_user_id)

    async def _finish(self, tg_user_id: int, offers: bool | None = None) -> WelcomeResult:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await self._customer(repos, tg_user_id)
            if offers is not None:
                self._record_offers(repos, customer, offers, now, BUTTON)
            if customer.onboarded_at is None:
                customer.onboarded_at = now
            return await self._welcome(repos, customer, tg_user_id, now)

    async def _welcome(
        self, repos: Repos, customer: Customer, tg_user_id: int, now: datetime
    ) -> WelcomeResult:
        """The welcome coupon, once per account and per phone (and with offers, if so ruled)."""
        own = await repos.coupons.of_kind(customer.id, WELCOME)
        if own is not None:
            return WelcomeResult(WelcomeOutcome.ALREADY_YOURS, CouponView.of(own, self.tz))
        rule = self.business.coupons.welcome
        if not rule.for_known_customers and await self._known(repos, customer):
            return WelcomeResult(WelcomeOutcome.KNOWN_CUSTOMER, None)
        if self.business.coupons.welcome.requires_offers_consent and customer.marketing_opt_out:
            return WelcomeResult(WelcomeOutcome.NEEDS_OFFERS, None)
        fingerprints = welcome_fingerprints(self._welcome_key, tg_user_id, customer.phone)
        if await repos.welcome_claims.claimed(fingerprints):
            return WelcomeResult(WelcomeOutcome.CLAIMED_ELSEWHERE, None)
        coupon = await issue_coupon(
            repos,
            customer_id=customer.id,
            kind=WELCOME,
            rule=self.business.coupons.welcome,
            now=now,
            tz=self.tz,
        )
        await repos.welcome_claims.claim(fingerprints, coupon.id, now)
        return WelcomeResult(WelcomeOutcome.ISSUED, CouponView.of(coupon, self.tz))

    @staticmethod
    async def _known(repos: Repos, customer: Customer) -> bool:
        """The business knew them before they joined: they have visits (imported, or recorded
        before onboarding ended)."""
        visits, _, _ = await repos.purchases.summary(customer.id)
        return visits > 0

    async def active_coupons(self, tg_user_id: int) -> list[CouponView]:
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            if customer is None:
                return []
            coupons = await repos.coupons.active(customer.id, self.clock.now())
            return [CouponView.of(c, self.tz) for c in coupons]

    async def coupon(self, tg_user_id: int, coupon_id: int) -> CouponView | None:
        """The customer's own coupon by id; None for someone else's or an unknown id."""
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            coupon = await repos.coupons.get(coupon_id)
            if customer is None or coupon is None or coupon.customer_id != customer.id:
                return None
            return CouponView.of(coupon, self.tz)

    async def profile(self, tg_user_id: int) -> Profile | None:
        async with self.db.reading() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id)
            if customer is None:
                return None
            consent = await repos.consents.latest(customer.id, PERSONAL_DATA)
            offers = await repos.consents.latest(customer.id, MARKETING)
            birthday = (
                Birthday(customer.birth_day, customer.birth_month, customer.birth_year)
                if customer.birth_day and customer.birth_month
                else None
            )
            return Profile(
                name=customer.name,
                phone=customer.phone,
                birthday=birthday,
                language=customer.language,
                consent_version=consent.version if consent else None,
                consent_at=consent.at if consent else None,
                marketing=not customer.marketing_opt_out,
                active_coupons=len(await repos.coupons.active(customer.id, self.clock.now())),
                offers_at=offers.at if offers else None,
            )

    async def set_marketing(
        self, tg_user_id: int, allowed: bool, via: ConsentVia = ConsentVia.BUTTON
    ) -> bool:
        """Opt in or out of marketing; returns False when it already was so."""
        return (await self._set_offers(tg_user_id, allowed, via)).changed

    async def allow_offers(
        self, tg_user_id: int, via: ConsentVia = ConsentVia.BUTTON
    ) -> OffersChange:
        """/resume: offers on; a welcome coupon that waited for this is given now, once."""
        try:
            return await self._set_offers(tg_user_id, True, via)
        except IntegrityError:  # another process claimed the same fingerprint at that instant
            return await self._set_offers(tg_user_id, True, via)

    async def _set_offers(self, tg_user_id: int, allowed: bool, via: ConsentVia) -> OffersChange:
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await self._customer(repos, tg_user_id)
            if customer.marketing_opt_out == (not allowed):
                return OffersChange(changed=False)
            self._record_offers(repos, customer, allowed, now, via)
            welcome = None
            if (
                allowed
                and customer.onboarded_at is not None
                and self.business.coupons.welcome.requires_offers_consent
            ):
                result = await self._welcome(repos, customer, tg_user_id, now)
                welcome = result.coupon if result.outcome is WelcomeOutcome.ISSUED else None
            return OffersChange(changed=True, welcome=welcome)

    async def forget(self, tg_user_id: int) -> bool:
        """Erase personal data, every copy of it (bot/db/erasure.py); keep an anonymous row, the
        purchases and the coupons so the business's totals still add up."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
            if customer is None:
                return False
            await self.erase(repos, customer, now, ErasureReason.FORGET)
            return True

    async def erase(
        self, repos: Repos, customer: Customer, now: datetime, reason: ErasureReason
    ) -> Erasure:
        """`/forget`'s erasure, in the caller's transaction (also the owner's retention period's,
        bot/services/retention.py), with its destruction record: counts per category, no name,
        phone, text or Telegram id."""
        tg_user_id = customer.tg_user_id
        erased = {
            "profile_fields": sum(
                value is not None
                for value in (
                    tg_user_id,
                    customer.username,
                    customer.name,
                    customer.phone,
                    customer.birth_day or customer.birth_month or customer.birth_year,
                )
            )
        }
        customer.tg_user_id = None
        customer.username = None
        customer.name = customer.name_folded = None
        customer.phone = None
        customer.birth_day = customer.birth_month = customer.birth_year = None
        customer.marketing_opt_out = True
        customer.data_consent_version = None
        customer.erased_at = now
        erased["coupons_voided"] = await repos.coupons.void_active(customer.id, now)
        erased |= await repos.erasure.care(tg_user_id, customer.id)
        via = FORGET if reason == ErasureReason.FORGET else ConsentVia.RETENTION
        version = self.business.privacy_version
        repos.consents.record(customer.id, PERSONAL_DATA, False, version, now, via=via)
        repos.consents.record(customer.id, MARKETING, False, version, now, via=via)
        erased |= await repos.erasure.rhythm(customer.id)
        await self.events.customer_erased(repos, CustomerErased(customer.id, now))
        # Last, so what the subscribers just wrote (a cancelled visit's notices) is covered too.
        erased |= await repos.erasure.erase(customer.id, tg_user_id)
        return repos.erasure.record(customer.id, reason, erased, now)

    def today(self) -> date:
        """Today in the business's time zone (birthdays are checked against it)."""
        return local_today(self.clock, self.tz)
