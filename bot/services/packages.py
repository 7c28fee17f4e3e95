"""Prepaid packages (абонементы, `[[loyalty.packages]]`): sold with a sale, used by later visits.

- `/sale <customer> [amount] package:<name>` records the sale as any (its amount, the package's
  price unless staff typed one; cashback accrues on it) and stores the package with it: its
  visits, valid `expire_months` from the sale (0: never). The customer is told (a service
  message: a receipt).
- Every later sale of that service to that customer, while one of their packages of it is valid
  and has visits left, uses one visit of the package expiring first: the sale is still recorded
  (a visit: cycles, surveys and the visit counts hang off purchases) but with amount 0, marked as
  paid by the package (`package_visits`), so it is not charged again and earns no cashback.
  Staff's answer says "paid by package, 3 of 5 left", and so does a service message to the
  customer. The use is one conditional update (`used < visits`), after the customer's row is
  locked by the sale: two staff recording the last visit at once use it once; the other sale is
  charged as usual.
- A reminder (a service message: they paid for these visits) `remind_days_before` days before a
  package expires with visits left, planned once per package, dropped at send time if none are
  left by then.
- A cancelled sale (staff's mistake, `SaleCancelled`): a visit the package paid is given back; a
  package bought by it is withdrawn if no visit used it yet, else the cancel is refused (the
  visits first).
- /forget deletes the customer's packages and the visits they paid (the visits' sales stay,
  anonymous, as every erased customer's do).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, Package
from bot.buttons import Keyboard
from bot.clock import Clock
from bot.db.models import Customer, CustomerPackage, OutboxMessage, PackageVisit
from bot.db.repositories import Database, Repos
from bot.events import CustomerErased, SaleCancelled
from bot.features import Features
from bot.outbox import SERVICE
from bot.outbox.compose import Obsolete
from bot.outbox.policy import Policy

SOLD = "package_sold"  # the templates of the service messages: bought,
USED = "package_used"  # a visit paid by it,
REMINDER = "package_expiring"  # and visits left before it expires
SOLD_KEY = "package_sold:"  # + the package's id
USED_KEY = "package_used:"  # + the visit's sale (purchase) id
REMINDER_KEY = "package_expiry:"  # + the package's id: one reminder per package
NOTICE_VALID = timedelta(days=3)
DEFAULT_REMIND_DAYS = Package.model_fields["remind_days_before"].default


@dataclass(frozen=True)
class PackageState:
    """A customer's package as shown: to staff under /sale, to the customer in /card and in
    the service messages. `sold`: this sale bought it (else this sale used one of its visits)."""

    id: int
    name: str
    service: str  # the service's name (its id if no longer in the business file)
    visits: int
    left: int
    expires_at: datetime | None
    sold: bool = False

    @classmethod
    def of(cls, row: CustomerPackage, business: Business, *, sold: bool = False) -> PackageState:
        service = business.service(row.service_id)
        return cls(
            id=row.id,
            name=row.name,
            service=service.name if service else row.service_id,
            visits=row.visits,
            left=row.visits - row.used,
            expires_at=row.expires_at,
            sold=sold,
        )


def expiry_of(rule: Package, at: datetime) -> datetime | None:
    """`expire_months` after the sale; None: never."""
    from bot.services.loyalty import expires_after  # it imports staff's, which import this

    return expires_after(at, rule.expire_months)


async def sell_in(
    repos: Repos,
    business: Business,
    rule: Package,
    customer_id: int,
    purchase_id: int,
    price_minor: int,
    now: datetime,
) -> PackageState:
    """Store the package the sale `purchase_id` bought (in the sale's transaction) and tell the
    customer."""
    package = await repos.packages.add(
        CustomerPackage(
            customer_id=customer_id,
            name=rule.name,
            service_id=rule.service,
            visits=rule.visits,
            used=0,
            price_minor=price_minor,
            purchase_id=purchase_id,
            sold_at=now,
            expires_at=expiry_of(rule, now),
        )
    )
    await _notice(repos, f"{SOLD_KEY}{package.id}", SOLD, customer_id, now)
    return PackageState.of(package, business, sold=True)


async def take_visit_in(
    repos: Repos, customer_id: int, service_id: str | None, now: datetime
) -> CustomerPackage | None:
    """One visit of the customer's package of this service expiring first, if they have one
    valid with visits left (the caller holds the customer's row lock and records the sale with
    amount 0, then `paid_in`). None: the sale is charged as usual."""
    if service_id is None:
        return None
    for package_id in await repos.packages.usable(customer_id, service_id, now):
        if await repos.packages.use_one(package_id, now):
            package = await repos.packages.get(package_id)
            assert package is not None
            await repos.packages.reload(package)  # `used` as the update left it
            return package
    return None


async def paid_in(
    repos: Repos, business: Business, package: CustomerPackage, purchase_id: int, now: datetime
) -> PackageState:
    """Mark the sale `purchase_id` as paid by the package (a visit `take_visit_in` took) and
    tell the customer how many visits are left."""
    await repos.packages.add_visit(
        PackageVisit(package_id=package.id, purchase_id=purchase_id, at=now)
    )
    state = PackageState.of(package, business)
    await _notice(
        repos,
        f"{USED_KEY}{purchase_id}",
        USED,
        package.customer_id,
        now,
        {"package_id": package.id, "left": state.left},
    )
    return state


async def _notice(
    repos: Repos,
    key: str,
    template: str,
    customer_id: int,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    await repos.outbox.queue(
        key=key,
        kind=SERVICE,
        template=template,
        customer_id=customer_id,
        data=data,
        not_before=now,
        not_after=now + NOTICE_VALID,
        now=now,
    )


class PackageService:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.policy = Policy(business.marketing, tz)

    def register(self, features: Features) -> None:
        """The reminder's planner, the messages' composer, /forget, and a cancelled sale."""
        features.plan("package_reminders", self.remind)
        features.compose(self.compose, SOLD, USED, REMINDER)
        features.on_erased(self.erase)
        features.events.on_sale_cancelled(self.cancelled)

    # ---- reading ------------------------------------------------------------------------------

    async def left(self, customer_id: int) -> list[PackageState]:
        """The customer's valid packages with visits left, soonest-expiring first (/card)."""
        async with self.db.reading() as repos:
            rows = await repos.packages.of_customer(customer_id, self.clock.now())
            return [PackageState.of(row, self.business) for row in rows]

    # ---- the reminder -------------------------------------------------------------------------

    async def remind(self) -> int:
        """The planner: a service message `remind_days_before` days before each valid package
        with visits left expires; keyed by the package, so planned once however often it runs."""
        now = self.clock.now()
        async with self.db.transaction() as repos:
            return await repos.outbox.plan(
                repos.packages.reminder_rows(
                    REMINDER_KEY,
                    REMINDER,
                    days_by_name={
                        p.name: p.remind_days_before for p in self.business.loyalty.packages
                    },
                    default_days=DEFAULT_REMIND_DAYS,
                    now=now,
                    due_at=self.policy.morning(now),
                )
            )

    async def compose(
        self, repos: Repos, row: OutboxMessage, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], Keyboard | None]:
        """The package as it is when the message goes: withdrawn, erased, or (the reminder) with
        no visits left or expired: not sent."""
        if customer is None:
            raise Obsolete("no customer")
        data = row.data or {}
        if row.template == USED:
            package_id = int(data["package_id"])
            if await repos.packages.visit_of(int(row.key.removeprefix(USED_KEY))) is None:
                raise Obsolete("the visit was cancelled")
        else:
            package_id = int(
                row.key.removeprefix(SOLD_KEY if row.template == SOLD else REMINDER_KEY)
            )
        package = await repos.packages.get(package_id)
        if package is None or package.withdrawn_at is not None:
            raise Obsolete("the package was withdrawn")
        state = PackageState.of(package, self.business)
        if row.template == REMINDER:
            if state.left <= 0:
                raise Obsolete("no visits left")
            if package.expires_at is None or package.expires_at <= now:
                raise Obsolete("the package expired")
        if row.template == USED:  # as many as were left right after that visit
            state = replace(state, left=int(data["left"]))
        return {"package": state}, None

    # ---- a cancelled sale, /forget --------------------------------------------------------------

    async def cancelled(self, repos: Repos, event: SaleCancelled) -> None:
        """Subscribed to cancelled sales (in the cancelling transaction): the visit a package
        paid is given back; a package the sale bought is withdrawn if no visit used it, else
        the cancel is refused (UsageError "package_in_use": cancel those visits first)."""
        await repos.packages.give_back(event.purchase_id)
        package = await repos.packages.bought_by(event.purchase_id)
        if package is None or package.withdrawn_at is not None:
            return
        if not await repos.packages.withdraw(package.id, event.at):
            from bot.services.staff import UsageError  # staff's services import this module

            raise UsageError(
                "package_in_use", package=package.name, used=package.used, visits=package.visits
            )
        await repos.outbox.skip_pending(
            "cancelled", keys=[f"{SOLD_KEY}{package.id}", f"{REMINDER_KEY}{package.id}"]
        )

    async def erase(self, repos: Repos, event: CustomerErased) -> None:
        await repos.packages.erase(event.customer_id)
