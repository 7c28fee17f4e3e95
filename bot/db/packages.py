"""Prepaid packages and the visits they paid (`packages`, `package_visits`): all their SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    delete,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Customer, CustomerPackage, OutboxKind, PackageVisit


def _valid(now: datetime) -> ColumnElement[bool]:
    """Not withdrawn and not expired by `now`."""
    return and_(
        CustomerPackage.withdrawn_at.is_(None),
        or_(CustomerPackage.expires_at.is_(None), CustomerPackage.expires_at > now),
    )


class PackageRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, package: CustomerPackage) -> CustomerPackage:
        self.session.add(package)
        await self.session.flush()
        return package

    async def get(self, package_id: int) -> CustomerPackage | None:
        return await self.session.get(CustomerPackage, package_id)

    async def usable(self, customer_id: int, service_id: str, now: datetime) -> list[int]:
        """The ids of the customer's valid packages of that service with visits left, the one
        expiring first first (those that never expire last, then the oldest)."""
        rows = await self.session.scalars(
            select(CustomerPackage.id)
            .where(
                CustomerPackage.customer_id == customer_id,
                CustomerPackage.service_id == service_id,
                CustomerPackage.used < CustomerPackage.visits,
                _valid(now),
            )
            .order_by(
                CustomerPackage.expires_at.is_(None),
                CustomerPackage.expires_at,
                CustomerPackage.id,
            )
        )
        return list(rows)

    async def use_one(self, package_id: int, now: datetime) -> bool:
        """One visit of the package, if one is left and it is valid: a conditional update, so of
        two staff using its last visit at once exactly one matches the row."""
        result = await self.session.execute(
            update(CustomerPackage)
            .where(
                CustomerPackage.id == package_id,
                CustomerPackage.used < CustomerPackage.visits,
                _valid(now),
            )
            .values(used=CustomerPackage.used + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_visit(self, visit: PackageVisit) -> None:
        self.session.add(visit)
        await self.session.flush()

    async def visit_of(self, purchase_id: int) -> PackageVisit | None:
        return (
            await self.session.scalars(
                select(PackageVisit).where(PackageVisit.purchase_id == purchase_id)
            )
        ).one_or_none()

    async def bought_by(self, purchase_id: int) -> CustomerPackage | None:
        """The package this sale bought, if it did."""
        return (
            await self.session.scalars(
                select(CustomerPackage).where(CustomerPackage.purchase_id == purchase_id)
            )
        ).one_or_none()

    async def give_back(self, purchase_id: int) -> int | None:
        """The visit this sale used of a package given back (its row deleted, `used` one less);
        the package's id, or None when the sale used no package's visit."""
        visit = await self.visit_of(purchase_id)
        if visit is None:
            return None
        await self.session.execute(delete(PackageVisit).where(PackageVisit.id == visit.id))
        await self.session.execute(
            update(CustomerPackage)
            .where(CustomerPackage.id == visit.package_id, CustomerPackage.used > 0)
            .values(used=CustomerPackage.used - 1)
            .execution_options(synchronize_session=False)
        )
        return visit.package_id

    async def withdraw(self, package_id: int, now: datetime) -> bool:
        """Withdraw the package if no visit used it (conditional: a visit using it at the same
        moment makes this match nothing)."""
        result = await self.session.execute(
            update(CustomerPackage)
            .where(
                CustomerPackage.id == package_id,
                CustomerPackage.used == 0,
                CustomerPackage.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def reload(self, package: CustomerPackage) -> None:
        await self.session.refresh(package)

    async def of_customer(
        self, customer_id: int, now: datetime | None = None
    ) -> list[CustomerPackage]:
        """The customer's packages, soonest-expiring first; with `now`, only those valid then
        with visits left (what /card shows)."""
        query = select(CustomerPackage).where(CustomerPackage.customer_id == customer_id)
        if now is not None:
            query = query.where(CustomerPackage.used < CustomerPackage.visits, _valid(now))
        return list(
            await self.session.scalars(
                query.order_by(
                    CustomerPackage.expires_at.is_(None),
                    CustomerPackage.expires_at,
                    CustomerPackage.id,
                )
            )
        )

    async def visits_of(self, package_ids: Iterable[int]) -> list[PackageVisit]:
        ids = list(package_ids)
        if not ids:
            return []
        return list(
            await self.session.scalars(
                select(PackageVisit)
                .where(PackageVisit.package_id.in_(ids))
                .order_by(PackageVisit.at, PackageVisit.id)
            )
        )

    async def erase(self, customer_id: int) -> int:
        """/forget: the customer's packages and the visits they paid (the visits' sales stay, as
        every erased customer's do, naming nobody). Returns how many packages went."""
        theirs = select(CustomerPackage.id).where(CustomerPackage.customer_id == customer_id)
        await self.session.execute(delete(PackageVisit).where(PackageVisit.package_id.in_(theirs)))
        result = await self.session.execute(
            delete(CustomerPackage).where(CustomerPackage.customer_id == customer_id)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def reminder_rows(
        self,
        key_prefix: str,
        template: str,
        *,
        days_by_name: dict[str, int],
        default_days: int,
        now: datetime,
        due_at: datetime,
    ) -> Select[Any]:
        """Outbox rows (a service message each) for the valid packages with visits left that
        expire within their package's `remind_days_before` (a package no longer in the business
        file: `default_days`; 0: none); keyed `<prefix><package id>`, due by the expiry. Whether
        visits are still left is asked again at send time (the composer)."""
        from bot.db.repositories import planned_rows  # it imports this module

        windows: list[ColumnElement[bool]] = []
        by_days: dict[int, list[str]] = {}
        for name, days in days_by_name.items():
            by_days.setdefault(days, []).append(name)
        for days, names in by_days.items():
            if days > 0:
                windows.append(
                    and_(
                        CustomerPackage.name.in_(names),
                        CustomerPackage.expires_at <= now + timedelta(days=days),
                    )
                )
        if default_days > 0:
            windows.append(
                and_(
                    CustomerPackage.name.not_in(list(days_by_name)),
                    CustomerPackage.expires_at <= now + timedelta(days=default_days),
                )
            )
        return (
            planned_rows(
                literal(key_prefix, String) + cast(CustomerPackage.id, String),
                CustomerPackage.customer_id,
                kind=OutboxKind.SERVICE,
                template=template,
                data={},
                not_before=now,
                not_after=CustomerPackage.expires_at,
                due_at=due_at,
                now=now,
            )
            .select_from(CustomerPackage)
            .join(Customer, Customer.id == CustomerPackage.customer_id)
            .where(
                CustomerPackage.expires_at.is_not(None),
                CustomerPackage.used < CustomerPackage.visits,
                _valid(now),
                Customer.erased_at.is_(None),
                or_(*windows) if windows else literal(False),
            )
        )
