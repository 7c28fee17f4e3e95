"""Gift certificates in the owner's export (`carebot export`, `/export`): each with its amount,
what is left, who it was for, who issued and claimed it, its expiry and its spendings, exactly;
an erased claimer by nothing; a typed name Excel would run as a formula kept as text."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.business import Business, Certificates
from bot.clock import FixedClock
from bot.db.repositories import Database
from bot.services.certificates import CertificateService, GiftCommand
from bot.services.customers import CustomerService
from bot.services.exporting import ENCODING, FILES, Exporter
from bot.services.staff import Staff

MOSCOW = ZoneInfo("Europe/Moscow")
OLGA, IRA = Staff(1, "Ольга"), Staff(2, "Ира")
KEY = b"test-secret-key"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_certificates_are_in_the_export_with_their_spendings(
    db: Database, clock: FixedClock, business: Business, tmp_path: Path
) -> None:
    issued_at = clock.now()
    gifts = CertificateService(db, clock, Certificates(enabled=True, expire_months=12), MOSCOW)
    customers = CustomerService(db, clock, business, MOSCOW, secret_key=KEY)
    anna = await customers.consent(7, name="Анна", username=None, language="ru", source=None)
    await customers.set_phone(7, "+79161234567")
    await customers.consent(8, name="Борис", username=None, language="ru", source=None)
    spent = await gifts.issue(OLGA, GiftCommand(300000, "Анне"))
    unclaimed = await gifts.issue(IRA, GiftCommand(150000, "=HYPERLINK()"))
    erased = await gifts.issue(OLGA, GiftCommand(100000, None))
    assert (await gifts.claim(7, spent.code)).certificate is not None
    assert (await gifts.claim(8, erased.code)).certificate is not None
    clock.advance(timedelta(days=2, hours=3))
    spent_at = clock.now().astimezone(MOSCOW).isoformat(" ")[:16]
    await gifts.redeem(OLGA, spent.code, 100000)
    await gifts.redeem(IRA, spent.code, 50050)
    assert await customers.forget(8)

    exporter = Exporter(db, clock, business, MOSCOW)
    files = await exporter.to_folder(tmp_path / "out")
    assert ("certificates.csv", 3) in [(f.name, f.rows) for f in files]
    text = (tmp_path / "out" / "certificates.csv").read_text(encoding=ENCODING)
    assert text.splitlines()[0] == ",".join(FILES["certificates"])
    rows = {row["code"]: row for row in _rows(text)}
    local = issued_at.astimezone(MOSCOW).isoformat(" ")[:16]
    assert rows[spent.code] == {
        "code": spent.code,
        "amount": "3000.00",
        "left": "1499.50",
        "spent": "1500.50",
        "for": "Анне",
        "issued_at": local,
        "issued_by": "Ольга",
        "claimed_by": str(anna.id),
        "phone": "+79161234567",
        "claimed_at": local,
        "expires_at": rows[spent.code]["expires_at"],
        "spendings": f"{spent_at} 1000.00 Ольга\n{spent_at} 500.50 Ира",
    }
    assert rows[spent.code]["expires_at"] > spent_at  # valid a year: not yet
    assert rows[unclaimed.code]["for"] == "'=HYPERLINK()"  # text, never a formula
    assert rows[unclaimed.code]["issued_by"] == "Ира"
    assert (rows[unclaimed.code]["claimed_by"], rows[unclaimed.code]["claimed_at"]) == ("", "")
    assert (rows[unclaimed.code]["left"], rows[unclaimed.code]["spendings"]) == ("1500.00", "")
    # claimed by someone who was erased since: still claimed, by nobody named
    assert rows[erased.code]["claimed_by"] == rows[erased.code]["phone"] == ""
    assert rows[erased.code]["claimed_at"] == local

    archive = tmp_path / "export.zip"
    await exporter.to_zip(archive)
    with zipfile.ZipFile(archive) as opened:
        zipped = opened.read("certificates.csv").decode(ENCODING)
    assert _rows(zipped) == _rows(text)
