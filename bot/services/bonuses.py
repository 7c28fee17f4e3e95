"""The welcome and birthday bonuses of `[loyalty.cashback]` (`welcome_bonus`, `birthday_bonus`):
points for joining and for a birthday, ledger accruals without a sale, expiring as cashback does
(`expire_months`). Both need cashback on; 0 points: none.

The welcome bonus is credited when a customer gives their own phone in onboarding (a
`PhoneShared` subscriber, in the phone's transaction: the phone and the bonus commit together),
and the receipt follows through the outbox as a service message (it tells of points credited, so
no consent to offers is needed, like the answer to a sale). Once per person:

- an account or a phone that had it before gets none again: its keyed fingerprints are kept in
  `welcome_claims` (beside the welcome coupon's, without a coupon) and outlive /forget, so
  leaving and joining again earns nothing twice;
- an account or a phone a welcome coupon went to before earns none either (they joined before
  the bonus existed, and are joining again now), nor a phone another customer has (a second
  Telegram account of the same person);
- a customer the business knew before they joined (one imported from the previous base and
  recognised by their phone, or with visits already) gets it only where the welcome coupon goes
  to known customers too (`[coupons.welcome] for_known_customers`): the owner's one answer to
  "does someone we know get a welcome gift".

The birthday bonus is credited with the birthday greeting, when the sender makes it (its
composer, in the transaction that claims the row, as the greeting's coupon is issued), and the
greeting says so. Once per customer per year: the ledger entry carries the greeting's key
(`birthday:<customer>:<year>`, unique in `loyalty_entries.bonus_key`), so planner ticks,
restarts and a second sender credit nothing twice. It goes with the greeting, as its coupon
does, so whoever gets no greeting gets no bonus: no consent to offers (a greeting is marketing,
and it is not planned for them), opted out or blocked before it was sent, held out of the
birthday campaign (the control group measures the greeting with its gift), or no birthday
given. A greeting Telegram refuses after it was made (they blocked the bot that minute) leaves
the bonus credited: it is theirs, in /card.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.buttons import Keyboard
from bot.clock import Clock
from bot.db.models import Customer, OutboxMessage
from bot.db.repositories import Database, Repos
from bot.events import Credited, PhoneShared
from bot.features import Features
from bot.services.customers import keyed_fingerprint, welcome_fingerprints, welcome_key
from bot.services.loyalty import credit_bonus, queue_bonus_receipt

WELCOME = "welcome_bonus"  # the welcome accrual's reason, and the template of its receipt
WELCOME_KEY = "welcome_bonus:"  # + the customer's id: one receipt
BIRTHDAY = "birthday_bonus"  # the birthday accrual's reason
GREETING = "birthday_greeting"  # the greeting it comes with (the planner's, bot/outbox/planners.py)


def bonus_fingerprints(key: bytes, tg_user_id: int, phone: str) -> list[str]:
    """Fingerprints saying "this account / this phone got the welcome bonus": keyed like the
    welcome coupon's, from a salt of their own, so the two are told apart."""
    return [
        keyed_fingerprint(key, hashlib.sha256(f"carebot-welcome-bonus|{v}".encode()).hexdigest())
        for v in (f"tg:{tg_user_id}", f"phone:{phone}")
    ]


class BonusService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, *, secret_key: bytes
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self._key = welcome_key(secret_key)

    @property
    def cashback(self):  # type: ignore[no-untyped-def]
        return self.business.loyalty.cashback

    def register(self, features: Features) -> None:
        features.on_phone_shared(self.welcome)
        features.compose(self.birthday, GREETING)

    # ---- welcome ------------------------------------------------------------------------------

    async def welcome(self, repos: Repos, event: PhoneShared) -> Credited | None:
        """Subscribed to the phone step: the welcome bonus, once per person (the module's
        rules), with its receipt queued. None when nothing is credited."""
        points = self.cashback.welcome_bonus
        if not self.cashback.enabled or points <= 0:
            return None
        customer = await repos.customers.get(event.customer_id)
        if customer is None or customer.erased_at is not None:
            return None
        if not self.business.coupons.welcome.for_known_customers and await self._known(
            repos, customer
        ):
            return None
        mine = bonus_fingerprints(self._key, event.tg_user_id, event.phone)
        coupon = welcome_fingerprints(self._key, event.tg_user_id, event.phone)
        if await repos.welcome_claims.claimed(mine + coupon):
            return None  # had it, or a welcome coupon, before (on this account or phone)
        if await repos.referrals.phone_elsewhere(event.phone, customer.id):
            return None  # another customer's phone: a second account of the same person
        await repos.welcome_claims.claim(mine, None, event.at)  # a second one fails on the key
        await credit_bonus(repos, self.cashback, customer.id, points, WELCOME, event.at)
        await queue_bonus_receipt(
            repos, f"{WELCOME_KEY}{customer.id}", WELCOME, customer.id, points, event.at
        )
        return Credited(WELCOME, points)

    @staticmethod
    async def _known(repos: Repos, customer: Customer) -> bool:
        if customer.imported_at is not None:
            return True
        visits, _, _ = await repos.purchases.summary(customer.id)
        return visits > 0

    # ---- birthday -----------------------------------------------------------------------------

    async def birthday(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """The greeting's composer: its bonus credited once (keyed by the greeting's own key,
        `birthday:<customer>:<year>`), and `bonus` and `balance` for its text. Nothing when the
        program is off."""
        points = self.cashback.birthday_bonus
        if customer is None or not self.cashback.enabled or points <= 0:
            return {}, None
        await repos.loyalty.lock(customer.id)  # the customer's ledger writers queue here
        credited = await repos.loyalty.bonus(row.key)
        if credited is None:
            await credit_bonus(
                repos, self.cashback, customer.id, points, BIRTHDAY, now, key=row.key
            )
            credited = points
        return {"bonus": credited, "balance": await repos.loyalty.balance(customer.id)}, None
