"""Gift certificates and their uses (`certificates`, `certificate_uses`): all their SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Certificate, CertificateUse


class CertificateRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def code_exists(self, code: str) -> bool:
        found = await self.session.scalar(select(Certificate.id).where(Certificate.code == code))
        return found is not None

    async def add(self, certificate: Certificate) -> Certificate:
        self.session.add(certificate)
        await self.session.flush()
        return certificate

    async def by_code(self, code: str, *, for_update: bool = False) -> Certificate | None:
        """`for_update`: the row stays locked till the transaction ends (PostgreSQL; SQLite's
        write transaction holds off every other writer anyway), so a use checked against the
        balance is written before anyone else's check."""
        query = select(Certificate).where(Certificate.code == code)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def claim(self, certificate_id: int, customer_id: int, now: datetime) -> bool:
        """Make it this customer's if nobody claimed it yet: one conditional update, so of two
        people opening the link at once exactly one matches the row."""
        result = await self.session.execute(
            update(Certificate)
            .where(Certificate.id == certificate_id, Certificate.claimed_at.is_(None))
            .values(customer_id=customer_id, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def reload(self, certificate: Certificate) -> None:
        await self.session.refresh(certificate)

    async def spent(self, certificate_id: int) -> int:
        total = await self.session.scalar(
            select(func.coalesce(func.sum(CertificateUse.amount_minor), 0)).where(
                CertificateUse.certificate_id == certificate_id
            )
        )
        return int(total or 0)

    def use(self, use: CertificateUse) -> None:
        self.session.add(use)

    async def of_customer(self, customer_id: int) -> list[tuple[Certificate, int]]:
        """A customer's certificates with what was spent of each, newest first (each one's
        spendings summed by its own index range, not every certificate's)."""
        spent = (
            select(func.coalesce(func.sum(CertificateUse.amount_minor), 0))
            .where(CertificateUse.certificate_id == Certificate.id)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(Certificate, spent)
            .where(Certificate.customer_id == customer_id)
            .order_by(Certificate.created_at.desc(), Certificate.id.desc())
        )
        return [(certificate, int(total)) for certificate, total in rows]
