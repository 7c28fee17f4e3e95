"""Bring a friend (`[loyalty.referral]`): every customer's personal link, the friend's bonus when
they join, the reward of the one who brought them after the friend's first purchase.

- A link is `?start=ref_<token>`: a random token made once per customer (stable, unguessable,
  not their id). A customer who opens any link changes nothing (a polite word at the edge).
- A newcomer who came by a link is recorded when they give their phone (the end of onboarding's
  part that makes them someone), in the phone's own transaction (a `PhoneShared` subscriber), so
  the phone and the friend's bonus commit together or not at all: JOINED, with `friend_bonus` points credited, when the phone is new
  to the business; REFUSED otherwise, with nothing for anyone: a phone another customer has had
  (an imported customer recognised by it too), an account or phone a welcome coupon went to
  before (those fingerprints outlive /forget), a phone already brought once (`phone_key`, keyed,
  unique), the referrer themselves (same account, same phone), or a loop (the friend brought the
  referrer).
- The friend's first purchase (a purchase subscriber, in the sale's transaction) credits the
  referrer `referrer_reward` points once (JOINED → REWARDED is a conditional update) and tells
  them through the outbox: a receipt of points, so a service message (no offers consent needed,
  like the answer to a sale), not marketing.
- Both bonuses are ledger accruals (no sale: `purchase_id` empty) with a reason saying which,
  expiring as cashback does (`[loyalty.cashback] expire_months`).
- /forget deletes the erased customer's link and unlinks them from the rows (NULL): the referrer's
  counts stay, the phone's key stays (no second bonus), nothing names the erased.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from bot.business import Business
from bot.clock import Clock
from bot.db.models import Customer, Referral, ReferralState
from bot.db.referrals import Referrer
from bot.db.repositories import Database, Repos
from bot.events import Credited, CustomerErased, PhoneShared, PurchaseRecorded
from bot.features import Features
from bot.services.customers import welcome_fingerprints, welcome_key
from bot.services.loyalty import credit_bonus, queue_bonus_receipt
from bot.services.stats import Period, parse_period

PAYLOAD = "ref_"
TOKEN = re.compile(r"^ref_([A-Za-z0-9_-]{8,32})$")
TOKEN_BYTES = 9  # 12 URL-safe characters: 72 random bits
FRIEND_BONUS = "referral_bonus"  # the reason of the friend's accrual
REFERRER_REWARD = "referral_reward"  # the reason of the referrer's, and the template telling them
REWARD_KEY = "referral_reward:"  # + the referral's id
TOP = 30


def referral_token(args: str | None) -> str | None:
    """The token of a `/start ref_<token>` payload; None for anything else."""
    match = TOKEN.match(args or "")
    return match[1] if match else None


@dataclass(frozen=True)
class Joined:
    """What the friend's phone earned: `bonus` points (0 when refused)."""

    state: ReferralState
    bonus: int
    refused: str | None = None


class ReferralService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, *, secret_key: bytes
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self._welcome_key = welcome_key(secret_key)
        self._phone_key = hmac.new(secret_key, b"carebot referral phones", hashlib.sha256).digest()

    @property
    def rules(self):  # type: ignore[no-untyped-def]
        return self.business.loyalty.referral

    @property
    def enabled(self) -> bool:
        return bool(self.rules.enabled)

    def register(self, features: Features) -> None:
        """The friend recorded with their phone; the referrer's reward at the friend's first
        sale; /forget unlinks."""
        features.on_phone_shared(self.joined_with_phone)
        features.on_purchase(self.reward_for_purchase)
        features.on_erased(self.erase)

    def phone_key(self, phone: str) -> str:
        return hmac.new(self._phone_key, phone.encode(), hashlib.sha256).hexdigest()

    # ---- the link -----------------------------------------------------------------------------

    async def token(self, customer_id: int) -> str:
        """The customer's link token, made at the first ask and the same ever after."""
        async with self.db.reading() as repos:
            found = await repos.referrals.token_of(customer_id)
        if found is not None:
            return found
        try:
            async with self.db.transaction() as repos:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                await repos.referrals.add_link(customer_id, token, self.clock.now())
                return token
        except IntegrityError:  # made by a second /card at the same instant
            async with self.db.reading() as repos:
                found = await repos.referrals.token_of(customer_id)
            assert found is not None
            return found

    # ---- the friend joins ---------------------------------------------------------------------

    async def joined_with_phone(self, repos: Repos, event: PhoneShared) -> Credited | None:
        """Subscribed to the phone step: a newcomer who came by a friend's link (`event.ref`) is
        recorded in the phone's transaction; the friend's bonus credited, if any. (The same
        phone brought by two links at the same instant: the loser's phone transaction fails on
        the phone's key and is retried, and then finds the phone brought: refused.)"""
        if not self.enabled or not event.ref:
            return None
        joined = await self._join(repos, event.tg_user_id, event.ref)
        if joined is None or not joined.bonus:
            return None
        return Credited(FRIEND_BONUS, joined.bonus)

    async def join(self, tg_user_id: int, token: str) -> Joined | None:
        """The newcomer who came by `token`'s link gave their phone: recorded once (see the
        module's rules), in a transaction of its own (the phone step records it in the phone's:
        `joined_with_phone`). None: no program, no such link, no phone yet, or recorded before."""
        if not self.enabled:
            return None
        try:
            async with self.db.transaction() as repos:
                return await self._join(repos, tg_user_id, token)
        except IntegrityError:  # the same phone brought by two links at the same instant
            return None

    async def _join(self, repos: Repos, tg_user_id: int, token: str) -> Joined | None:
        friend = await repos.customers.by_tg_user(tg_user_id)
        if friend is None or friend.phone is None or friend.erased_at is not None:
            return None
        if await repos.referrals.of_friend(friend.id) is not None:
            return None
        referrer = await repos.referrals.owner_of(token)
        if referrer is None:
            return None
        now = self.clock.now()
        phone_key = self.phone_key(friend.phone)
        refused = await self._refusal(repos, referrer, friend, tg_user_id, phone_key)
        state = ReferralState.REFUSED if refused else ReferralState.JOINED
        await repos.referrals.add(
            Referral(
                referrer_id=referrer.id,
                friend_id=friend.id,
                phone_key=None if refused else phone_key,
                state=state,
                refused=refused,
                joined_at=now,
            )
        )
        bonus = 0 if refused else self.rules.friend_bonus
        if bonus:
            await credit_bonus(
                repos, self.business.loyalty.cashback, friend.id, bonus, FRIEND_BONUS, now
            )
        return Joined(state, bonus, refused)

    async def _refusal(
        self, repos: Repos, referrer: Customer, friend: Customer, tg_user_id: int, phone_key: str
    ) -> str | None:
        """Why this friend earns nothing, or None."""
        phone = friend.phone
        assert phone is not None
        if referrer.id == friend.id or referrer.tg_user_id == tg_user_id or referrer.phone == phone:
            return "self"
        if await repos.referrals.brought_by(referrer.id, friend.id):
            return "loop"
        visits, _, _ = await repos.purchases.summary(friend.id)
        if (
            friend.imported_at is not None
            or visits > 0
            or await repos.referrals.phone_elsewhere(phone, friend.id)
            or await repos.referrals.claimed(
                welcome_fingerprints(self._welcome_key, tg_user_id, phone)
            )
            or await repos.referrals.phone_used(phone_key)
        ):
            return "known"
        return None

    # ---- the friend buys ----------------------------------------------------------------------

    async def reward_for_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: the friend's first one rewards the referrer, once, in the
        sale's transaction, and the referrer is told (a service message: a receipt)."""
        if not self.enabled:
            return
        referral = await repos.referrals.of_friend(event.customer_id)
        if referral is None or referral.state != ReferralState.JOINED:
            return
        if not await repos.referrals.mark_bought(referral.id, event.at):
            return
        points = self.rules.referrer_reward
        if referral.referrer_id is None or not points:
            return  # the referrer was erased, or the program rewards only the friend
        now = self.clock.now()
        await credit_bonus(
            repos,
            self.business.loyalty.cashback,
            referral.referrer_id,
            points,
            REFERRER_REWARD,
            now,
        )
        await queue_bonus_receipt(
            repos, f"{REWARD_KEY}{referral.id}", REFERRER_REWARD, referral.referrer_id, points, now
        )

    async def erase(self, repos: Repos, event: CustomerErased) -> None:
        await repos.referrals.erase(event.customer_id)

    # ---- the owner's view ---------------------------------------------------------------------

    def period(self, text: str | None) -> Period | None:
        return parse_period(text, self.clock.now().astimezone(self.tz).date())

    async def top(self, period: Period, limit: int = TOP) -> list[Referrer]:
        """Who brought the most friends who joined in the period, and how many of them bought."""
        start, end = period.bounds(self.tz)
        async with self.db.reading() as repos:
            return await repos.referrals.top(start, end, limit)
