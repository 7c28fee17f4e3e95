"""The stamp card (`[loyalty.stamps]`): every sale of one of the card's services (any sale when
none are named) adds a stamp, one per sale, in the sale's own transaction (a purchase
subscriber). The `every`-th stamp completes the card: a coupon for the next visit ("free": 100 %
off, or the reward's percent), valid `valid_days`, is issued in the same transaction and the
customer is told by a service message carrying it (a receipt, like a sale's answer: no offers
consent needed); the card starts again. Staff redeem the coupon with /redeem like any other.

- The card is an append-only ledger (`stamps`, bot/db/stamps.py); its state is a replay
  (`replay`): stamps go onto the open card; a completion (`reward`) takes every stamp on it; a
  withdrawn stamp leaves wherever it is; a reopened completion puts its stamps back.
- A stamp older than `expire_months` no longer counts (0: never); nothing is written for it,
  the replay leaves it out. A completion takes the stamps that count at its time.
- A cancelled sale (`SaleCancelled`) withdraws its stamp (`withdraw_for_purchase`); if that
  stamp was on a completed card whose coupon is still unused, the coupon is voided, its message
  dropped if not sent yet, and the card reopened with its other stamps (complete again if, with
  stamps added since, it is full). A coupon used already stays used: the reward was given.
- A visit a prepaid package paid (a sale of 0) earns no stamp: the package is its own deal.
- /forget deletes the customer's card (their coupons are voided by the erasure itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, CouponRule, Stamps
from bot.buttons import Keyboard
from bot.clock import Clock
from bot.db.models import Coupon, Customer, OutboxMessage, StampEntry, StampKind
from bot.db.repositories import Database, Repos
from bot.db.stamps import reward_message
from bot.events import CustomerErased, PurchaseRecorded, SaleCancelled
from bot.features import Features
from bot.outbox.compose import Obsolete
from bot.services.coupons import issue_coupon
from bot.services.loyalty import add_months

REWARD = "stamp_reward"  # the template of the receipt that carries the reward coupon
REWARD_KEY = "stamp_reward:"  # + the completion's id: one message per completed card
COUPON_KIND = "stamps"
NOTICE_VALID = timedelta(days=7)
FILLED, EMPTY = "✦", "✧"


def counts(stamp: StampEntry, at: datetime, expire_months: int) -> bool:
    """The stamp still counts at `at` (it is younger than `expire_months`; 0: always)."""
    return not expire_months or add_months(stamp.at, expire_months) > at


@dataclass
class Replay:
    """A card's ledger replayed, oldest line first."""

    open: list[StampEntry] = field(default_factory=list)  # on the card now (expired ones too)
    used: dict[int, list[StampEntry]] = field(default_factory=dict)  # completion id → its stamps
    completions: dict[int, StampEntry] = field(default_factory=dict)  # id → the reward line
    withdrawn: set[int] = field(default_factory=set)  # stamp ids

    def completion_of(self, stamp_id: int) -> StampEntry | None:
        """The completion that used this stamp, if one did (and is not reopened)."""
        for completion_id, stamps in self.used.items():
            if any(stamp.id == stamp_id for stamp in stamps):
                return self.completions[completion_id]
        return None


def replay(lines: list[StampEntry]) -> Replay:
    state = Replay()
    for line in lines:
        if line.kind == StampKind.STAMP:
            state.open.append(line)
        elif line.kind == StampKind.REWARD:
            state.used[line.id] = state.open
            state.completions[line.id] = line
            state.open = []
        elif line.kind == StampKind.WITHDRAWN and line.ref_id is not None:
            state.withdrawn.add(line.ref_id)
            state.open = [s for s in state.open if s.id != line.ref_id]
            for completion_id, stamps in state.used.items():
                state.used[completion_id] = [s for s in stamps if s.id != line.ref_id]
        elif line.kind == StampKind.REOPENED and line.ref_id in state.used:
            back = state.used.pop(line.ref_id)
            state.completions.pop(line.ref_id, None)
            state.open = sorted(state.open + back, key=lambda s: s.id)
    return state


@dataclass(frozen=True)
class StampCard:
    """A customer's card as shown: `stamps` of `every`, marked ✦ (filled) and ✧ (empty); when
    the oldest counting stamp stops counting; the code of the reward a sale just earned."""

    stamps: int
    every: int
    expires_at: datetime | None = None
    reward_code: str | None = None

    @property
    def marks(self) -> str:
        return FILLED * self.stamps + EMPTY * (self.every - self.stamps)


def card_of(
    rules: Stamps, lines: list[StampEntry], now: datetime, reward_code: str | None = None
) -> StampCard:
    counting = [s for s in replay(lines).open if counts(s, now, rules.expire_months)]
    oldest = counting[0].at if counting and rules.expire_months else None
    return StampCard(
        stamps=min(len(counting), rules.every),
        every=rules.every,
        expires_at=add_months(oldest, rules.expire_months) if oldest else None,
        reward_code=reward_code,
    )


async def card_in(
    repos: Repos, rules: Stamps, customer_id: int, now: datetime, purchase_id: int | None = None
) -> StampCard | None:
    """The customer's card (None when the program is off); with `purchase_id`, the code of the
    reward that sale's stamp completed, if it did (for staff's answer to the sale)."""
    if not rules.enabled:
        return None
    lines = await repos.stamps.lines(customer_id)
    code = None
    if purchase_id is not None:
        stamp = next((s for s in lines if s.purchase_id == purchase_id), None)
        after = next((s for s in lines if stamp and s.id > stamp.id), None)
        if after is not None and after.kind == StampKind.REWARD and after.coupon_id is not None:
            coupon = await repos.coupons.get(after.coupon_id)
            code = coupon.code if coupon else None
    return card_of(rules, lines, now, code)


@dataclass(frozen=True)
class Withdrawal:
    """What a cancelled sale took back: its stamp, and the reward coupon it completed if unused."""

    customer_id: int
    coupon_id: int | None = None


class StampService:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz

    @property
    def rules(self) -> Stamps:
        return self.business.loyalty.stamps

    def register(self, features: Features) -> None:
        """A sale stamps the card, a cancelled sale withdraws its stamp, /forget erases it."""
        features.on_purchase(self.stamp_for_purchase)
        features.events.on_sale_cancelled(self.withdraw_for_cancelled)
        features.on_erased(self.erase)
        features.compose(self.compose, REWARD)

    def earns(self, service_id: str | None) -> bool:
        """A sale of this service earns a stamp (any sale when the card names no services)."""
        return not self.rules.services or service_id in self.rules.services

    async def card(self, customer_id: int) -> StampCard | None:
        async with self.db.reading() as repos:
            return await card_in(repos, self.rules, customer_id, self.clock.now())

    # ---- a sale -------------------------------------------------------------------------------

    async def stamp_for_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: the sale's stamp, once, and the reward if it completes the
        card, in the sale's transaction (the customer's row is locked by the sale)."""
        if not self.rules.enabled or not self.earns(event.service_id):
            return
        if event.amount_minor <= 0:  # a visit a prepaid package paid: the package is its own deal
            return
        if await repos.stamps.of_purchase(event.purchase_id) is not None:
            return
        await repos.stamps.add(
            StampEntry(
                customer_id=event.customer_id,
                kind=StampKind.STAMP,
                purchase_id=event.purchase_id,
                at=event.at,
            )
        )
        await self._complete_if_full(repos, event.customer_id, event.at)

    async def _complete_if_full(self, repos: Repos, customer_id: int, now: datetime) -> bool:
        """Enough stamps that count on the open card: the reward coupon, the completion line
        that takes them, and the receipt carrying the coupon."""
        state = replay(await repos.stamps.lines(customer_id))
        counting = [s for s in state.open if counts(s, now, self.rules.expire_months)]
        if len(counting) < self.rules.every:
            return False
        coupon = await issue_coupon(
            repos,
            customer_id=customer_id,
            kind=COUPON_KIND,
            rule=CouponRule(percent=self.rules.percent, valid_days=self.rules.valid_days),
            now=now,
            tz=self.tz,
        )
        completion = await repos.stamps.add(
            StampEntry(customer_id=customer_id, kind=StampKind.REWARD, coupon_id=coupon.id, at=now)
        )
        await self._tell(repos, customer_id, completion, coupon, now)
        return True

    async def _tell(
        self, repos: Repos, customer_id: int, completion: StampEntry, coupon: Coupon, now: datetime
    ) -> None:
        await repos.outbox.plan(
            reward_message(
                f"{REWARD_KEY}{completion.id}",
                customer_id,
                coupon.id,
                template=REWARD,
                data={"every": self.rules.every, "free": self.rules.reward == "free"},
                now=now,
                not_after=now + NOTICE_VALID,
            )
        )

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """The reward's receipt is not sent once its coupon was withdrawn (the sale cancelled)."""
        coupon = await repos.coupons.get(row.coupon_id) if row.coupon_id else None
        if customer is None or coupon is None:
            raise Obsolete("no customer or coupon")
        if coupon.voided_at is not None:
            raise Obsolete("the reward was withdrawn")
        return {}, None

    # ---- a cancelled sale ---------------------------------------------------------------------

    async def withdraw_for_cancelled(self, repos: Repos, event: SaleCancelled) -> None:
        """Subscribed to cancelled sales, in the cancelling transaction."""
        await self.withdraw_for_purchase(repos, event.purchase_id)

    async def withdraw_for_purchase(self, repos: Repos, purchase_id: int) -> Withdrawal | None:
        """The sale's stamp withdrawn (once); if it was on a completed card whose coupon is
        unused, the coupon voided, its message dropped and the card reopened. None: the sale
        gave no stamp, or it was withdrawn before."""
        stamp = await repos.stamps.of_purchase(purchase_id)
        if stamp is None:
            return None
        await repos.customers.get(stamp.customer_id, for_update=True)  # one change at a time
        state = replay(await repos.stamps.lines(stamp.customer_id))
        if stamp.id in state.withdrawn:
            return None
        now = self.clock.now()
        completion = state.completion_of(stamp.id)
        await repos.stamps.add(
            StampEntry(
                customer_id=stamp.customer_id, kind=StampKind.WITHDRAWN, ref_id=stamp.id, at=now
            )
        )
        if completion is None or completion.coupon_id is None:
            return Withdrawal(stamp.customer_id)
        if not await repos.stamps.withdraw_coupon(completion.coupon_id, now):
            return Withdrawal(stamp.customer_id)  # used (or void) already: the reward was given
        await repos.stamps.add(
            StampEntry(
                customer_id=stamp.customer_id,
                kind=StampKind.REOPENED,
                ref_id=completion.id,
                at=now,
            )
        )
        await repos.outbox.skip_pending("withdrawn", keys=[f"{REWARD_KEY}{completion.id}"])
        await self._complete_if_full(repos, stamp.customer_id, now)
        return Withdrawal(stamp.customer_id, completion.coupon_id)

    async def erase(self, repos: Repos, event: CustomerErased) -> None:
        await repos.stamps.erase(event.customer_id)
