"""How long personal data is kept, and the destruction records that prove what went.

Two planners, off by default (`[retention]` in the business file):

- `care_texts_days = N`: the care chat's texts older than N days are blanked, both ways (the
  messages stay as rows without words, so counts and a late reply's way back remain), and so are
  the stored text and data of their relays once those are done. One aggregate destruction record
  per chunk, with no customer (it is many people's words).
- `inactive_customers_years = N`: a customer with nothing of theirs for N years (what counts:
  `bot.db.erasure.inactive`) is erased exactly as `/forget` erases (`CustomerService.erase`),
  nothing sent to them; one destruction record each, reason `retention`.

Both are idempotent (what is erased is no longer found) and work in bounded chunks: one write
transaction per chunk of texts and per customer, at most `MAX_PER_RUN` texts and
`MAX_CUSTOMERS_PER_RUN` customers a run; the rest goes at the next run (every 10 minutes, or the
next `carebot tick`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.business import Business
from bot.clock import Clock
from bot.db.models import ErasureReason
from bot.db.repositories import Database
from bot.services.customers import CustomerService

if TYPE_CHECKING:
    from bot.features import Features

log = logging.getLogger("carebot.retention")

TEXTS_CHUNK = 2000  # care messages per write transaction
MAX_PER_RUN = 10_000  # care messages per planner run (about a second: bench/retention.py)
# Customers per run: each is a /forget of its own (0.1-0.2 s on a busy machine), and the other
# planners run after this one, so a run stays within a minute or two; the rest go next run.
MAX_CUSTOMERS_PER_RUN = 500
CUSTOMERS_CHUNK = 100  # candidates read at a time
PAGE = 10  # destruction records per /erasures page (a line each, one message)


def years_before(moment: datetime, years: int) -> datetime:
    """The same calendar moment `years` earlier (29 February: the 28th)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


@dataclass(frozen=True)
class ErasureView:
    id: int
    customer_id: int | None
    reason: ErasureReason
    categories: dict[str, int]
    at: datetime


@dataclass(frozen=True)
class ErasurePage:
    records: list[ErasureView]
    total: int
    page: int
    pages: int


class RetentionService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, customers: CustomerService
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = business.retention
        self.customers = customers

    def register(self, features: Features) -> None:
        features.plan("retention_care_texts", self.erase_old_care_texts)
        features.plan("retention_customers", self.erase_inactive_customers)

    async def erase_old_care_texts(self) -> int:
        """Planner: care-chat texts older than `care_texts_days`; how many messages were blanked."""
        days = self.settings.care_texts_days
        if not days:
            return 0
        before = self.clock.now() - timedelta(days=days)
        blanked = 0
        while blanked < MAX_PER_RUN:
            async with self.db.reading() as repos:  # found without the write lock
                messages, relays = await repos.erasure.old_care_texts(before, TEXTS_CHUNK)
            if not messages and not relays:
                break
            async with self.db.transaction() as repos:
                erased = await repos.erasure.blank_care_texts(before, messages, relays)
                if any(erased.values()):
                    repos.erasure.record(None, ErasureReason.RETENTION, erased, self.clock.now())
            blanked += erased["care_texts"]
            if max(len(messages), len(relays)) < TEXTS_CHUNK or not any(erased.values()):
                break
        return blanked

    async def erase_inactive_customers(self) -> int:
        """Planner: customers inactive for `inactive_customers_years`; how many were erased."""
        years = self.settings.inactive_customers_years
        if not years:
            return 0
        erased = 0
        while erased < MAX_CUSTOMERS_PER_RUN:
            before = years_before(self.clock.now(), years)
            async with self.db.reading() as repos:
                candidates = await repos.erasure.inactive_customers(before, CUSTOMERS_CHUNK)
            erased_now = 0
            for customer_id in candidates:
                erased_now += await self._erase(customer_id, before)
            erased += erased_now
            if len(candidates) < CUSTOMERS_CHUNK or not erased_now:
                break
        if erased:
            log.info("retention erased inactive customers count=%s", erased)
        return erased

    async def _erase(self, customer_id: int, before: datetime) -> int:
        """One customer, in a transaction of its own, checked again inside it (they may have
        written in the meantime)."""
        async with self.db.transaction() as repos:
            customer = await repos.customers.get(customer_id, for_update=True)
            if customer is None or not await repos.erasure.inactive_customers(
                before, 1, customer_id=customer_id
            ):
                return 0
            await self.customers.erase(repos, customer, self.clock.now(), ErasureReason.RETENTION)
            return 1

    async def records(self, page: int = 1, per_page: int = PAGE) -> ErasurePage:
        """For /erasures: the latest destruction records first, a page of them, and how many."""
        async with self.db.reading() as repos:
            total = await repos.erasure.count()
            pages = max(1, -(-total // per_page))
            page = min(max(page, 1), pages)
            records = [
                ErasureView(
                    id=r.id,
                    customer_id=r.customer_id,
                    reason=ErasureReason(r.reason),
                    categories=_counts(r.categories),
                    at=r.at,
                )
                for r in await repos.erasure.records(per_page, (page - 1) * per_page)
            ]
        return ErasurePage(records=records, total=total, page=page, pages=pages)


def _counts(categories: dict[str, Any] | None) -> dict[str, int]:
    return {str(k): int(v) for k, v in (categories or {}).items() if isinstance(v, int) and v}
