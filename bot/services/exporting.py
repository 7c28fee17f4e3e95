"""`carebot export` and `/export`: the base as CSV files; `/mydata`: one customer's every row as
JSON (GDPR art. 15 and 20). No Telegram here.

The files (UTF-8 with a byte-order mark, so Excel opens Cyrillic right; commas; one header line):

- `customers.csv`: `name,phone,birthday,notes,email` — the generic import template's columns,
  so `carebot import customers` restores them — then `id,telegram_id,username,language,source,
  offers,data_consent_version,created_at,onboarded_at,imported_at,blocked_at,erased_at`.
- `visits.csv`: `date,phone,customer,service,master,amount` (the template's visit columns: the
  date `YYYY-MM-DD HH:MM` in the business's time zone, service and master as the business
  file's ids, the amount with a dot, `1500.00`), then `id,customer_id,staff`.
- `coupons.csv`, `bookings.csv`, `surveys.csv`, `consents.csv`: one row each, with the
  customer's id and phone.
- `certificates.csv`: each gift certificate with its amount, what is left and spent, who it was
  for, when and by whom it was issued, who claimed it (id, phone) and when, its expiry, and its
  spendings in one cell, a line each (`YYYY-MM-DD HH:MM amount staff`), oldest first.

Moments are local (TIMEZONE) `YYYY-MM-DD HH:MM` (consents to the second: they are the proof of
when). An erased customer is in every file by their id only: no name, phone, Telegram account,
notes or comments, whatever a row kept. A text a customer or the staff typed that Excel would
take for a formula (`=`, `+`, `-`, `@` first) is written with a leading apostrophe, Excel's own
"this is text" mark (OWASP, CSV injection); phones are left as they are.

The stdlib `csv` writes the cells (quoting of commas, quotes and line breaks in names and notes).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import IO, Any

from bot.business import Business
from bot.clock import Clock, local_today
from bot.db.exporting import ExportRepo, PersonRows
from bot.db.models import ConsentKind
from bot.db.repositories import Database
from bot.services.birthdays import Birthday
from bot.services.stamps import card_of

ENCODING = "utf-8-sig"  # UTF-8 with a BOM: Excel reads the file as UTF-8, not the ANSI code page
CUSTOMER_COLUMNS = ("name", "phone", "birthday", "notes", "email")
VISIT_COLUMNS = ("date", "phone", "customer", "service", "master", "amount")
FILES: dict[str, tuple[str, ...]] = {
    "customers": (
        *CUSTOMER_COLUMNS,
        "id",
        "telegram_id",
        "username",
        "language",
        "source",
        "offers",
        "data_consent_version",
        "created_at",
        "onboarded_at",
        "imported_at",
        "blocked_at",
        "erased_at",
    ),
    "visits": (*VISIT_COLUMNS, "id", "customer_id", "staff"),
    "coupons": (
        "code",
        "customer_id",
        "phone",
        "kind",
        "percent",
        "amount",
        "issued_at",
        "expires_at",
        "redeemed_at",
        "redeemed_by",
        "voided_at",
    ),
    "bookings": (
        "id",
        "customer_id",
        "phone",
        "service",
        "master",
        "starts_at",
        "ends_at",
        "state",
        "source",
        "created_at",
        "decided_at",
        "decided_by",
        "reason",
        "visit_id",
    ),
    "surveys": (
        "id",
        "visit_id",
        "customer_id",
        "phone",
        "service",
        "master",
        "planned_at",
        "answered_at",
        "score",
        "comment",
        "resolved_at",
        "resolved_by",
    ),
    "consents": ("customer_id", "phone", "kind", "granted", "version", "via", "at"),
    "certificates": (
        "code",
        "amount",
        "left",
        "spent",
        "for",
        "issued_at",
        "issued_by",
        "claimed_by",
        "phone",
        "claimed_at",
        "expires_at",
        "spendings",
    ),
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MINUTES = len("2026-11-20 15:30")  # isoformat(" ") cut to this: C-fast, where strftime is slow
SECONDS = len("2026-11-20 15:30:05")

Opener = Callable[[str], AbstractContextManager[IO[str]]]
Rows = AsyncIterator[list[list[Any]]]  # a file's rows, a page at a time


@dataclass(frozen=True)
class ExportedFile:
    name: str  # customers.csv
    rows: int


def money(minor: int | None) -> str:
    """Kopecks as the template's amount: `150000` → `1500.00` (integer arithmetic: exact, and
    a million visits' amounts in a fraction of what Decimal takes)."""
    if minor is None:
        return ""
    whole, cents = divmod(abs(minor), 100)
    return f"{'-' if minor < 0 else ''}{whole}.{cents:02d}"


def birthday_cell(day: int | None, month: int | None, year: int | None) -> str:
    """`1990-03-14`, or `14.03` without a year (both read back by the importer)."""
    if not day or not month:
        return ""
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"{day:02d}.{month:02d}"


def text_cell(value: str | None) -> str:
    """A typed text as a cell Excel shows as text, never runs as a formula."""
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class Exporter:
    def __init__(self, db: Database, clock: Clock, business: Business, tz: tzinfo) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz

    def today(self) -> date:
        return local_today(self.clock, self.tz)

    def folder_name(self) -> str:
        """`carebot export`'s folder when no --to is given: `export-2026-11-23`."""
        return f"export-{self.today().isoformat()}"

    def archive_name(self) -> str:
        return f"carebot-export-{self.today().isoformat()}.zip"

    # ---- the base as CSV files ------------------------------------------------------------------

    async def to_folder(self, folder: Path) -> list[ExportedFile]:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)

        @contextmanager
        def opener(name: str) -> Iterator[IO[str]]:
            with (folder / name).open("w", encoding=ENCODING, newline="") as stream:
                yield stream

        return await self.write(opener)

    async def to_zip(self, target: Path | IO[bytes]) -> list[ExportedFile]:
        """The same files in one ZIP archive (`/export`: one document in the admin chat)."""
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:

            @contextmanager
            def opener(name: str) -> Iterator[IO[str]]:
                with (
                    archive.open(name, "w") as raw,
                    io.TextIOWrapper(raw, encoding=ENCODING, newline="") as stream,
                ):
                    yield stream

            return await self.write(opener)

    async def write(self, opener: Opener) -> list[ExportedFile]:
        """Every file, from one read transaction (the files agree with each other)."""
        written: list[ExportedFile] = []
        async with self.db.reading() as repos:
            await repos.exporting.one_snapshot()
            for name, columns in FILES.items():
                pages = getattr(self, f"_{name}")(repos.exporting)
                with opener(f"{name}.csv") as stream:
                    count = await _write_csv(stream, columns, pages)
                written.append(ExportedFile(f"{name}.csv", count))
        return written

    def _at(self, value: datetime | None, length: int = MINUTES) -> str:
        return "" if value is None else value.astimezone(self.tz).isoformat(" ")[:length]

    async def _customers(self, repo: ExportRepo) -> Rows:
        async for page in repo.customers():
            notes = await repo.notes_of(row.id for row in page if row.erased_at is None)
            rows = []
            for r in page:
                erased = r.erased_at is not None
                rows.append(
                    [
                        "" if erased else text_cell(r.name),
                        "" if erased else r.phone or "",
                        "" if erased else birthday_cell(r.birth_day, r.birth_month, r.birth_year),
                        text_cell("\n".join(notes.get(r.id, ()))),
                        "",  # no e-mail is kept (an imported one is in the notes)
                        r.id,
                        "" if erased else r.tg_user_id or "",
                        "" if erased else r.username or "",
                        r.language,
                        r.source or "",
                        "no" if r.marketing_opt_out else "yes",
                        r.data_consent_version or "",
                        self._at(r.created_at),
                        self._at(r.onboarded_at),
                        self._at(r.imported_at),
                        self._at(r.blocked_at),
                        self._at(r.erased_at),
                    ]
                )
            yield rows

    async def _visits(self, repo: ExportRepo) -> Rows:
        at = self._at  # a million rows: unpacked tuples, no attribute look-ups per cell
        async for page in repo.visits():
            yield [
                [
                    at(when),
                    "" if erased else phone or "",
                    "" if erased else text_cell(name),
                    service or "",
                    master or "",
                    money(amount),
                    visit_id,
                    customer_id,
                    staff or "",
                ]
                for visit_id, when, phone, name, service, master, amount, customer_id, staff, erased in page
            ]

    async def _coupons(self, repo: ExportRepo) -> Rows:
        async for page in repo.coupons():
            rows = []
            for r in page:
                rows.append(
                    [
                        r.code,
                        r.customer_id or "",
                        _phone(r),
                        r.kind,
                        r.percent if r.percent is not None else "",
                        money(r.amount * 100) if r.amount is not None else "",
                        self._at(r.issued_at),
                        self._at(r.expires_at),
                        self._at(r.redeemed_at),
                        r.redeemed_by_name or "",
                        self._at(r.voided_at),
                    ]
                )
            yield rows

    async def _bookings(self, repo: ExportRepo) -> Rows:
        async for page in repo.bookings():
            rows = []
            for r in page:
                rows.append(
                    [
                        r.id,
                        r.customer_id,
                        _phone(r),
                        r.service_id,
                        r.master_id,
                        self._at(r.starts_at),
                        self._at(r.ends_at),
                        r.state,
                        r.source,
                        self._at(r.created_at),
                        self._at(r.decided_at),
                        r.decided_by or "",
                        "" if r.erased_at is not None else text_cell(r.reason),
                        r.purchase_id or "",
                    ]
                )
            yield rows

    async def _surveys(self, repo: ExportRepo) -> Rows:
        async for page in repo.surveys():
            rows = []
            for r in page:
                rows.append(
                    [
                        r.id,
                        r.purchase_id,
                        r.customer_id,
                        _phone(r),
                        r.service_id or "",
                        r.master_id or "",
                        self._at(r.planned_at),
                        self._at(r.answered_at),
                        r.score if r.score is not None else "",
                        "" if r.erased_at is not None else text_cell(r.comment),
                        self._at(r.resolved_at),
                        r.resolved_by or "",
                    ]
                )
            yield rows

    async def _consents(self, repo: ExportRepo) -> Rows:
        async for page in repo.consents():
            rows = []
            for r in page:
                rows.append(
                    [
                        r.customer_id,
                        _phone(r),
                        r.kind,
                        "yes" if r.granted else "no",
                        r.version,
                        r.via,
                        self._at(r.at, SECONDS),
                    ]
                )
            yield rows

    async def _certificates(self, repo: ExportRepo) -> Rows:
        at = self._at
        async for page in repo.certificates():
            uses = await repo.certificate_uses_of(row.id for row in page)
            rows = []
            for r in page:
                spendings = uses.get(r.id, [])
                spent = sum(amount for _, amount, _ in spendings)
                rows.append(
                    [
                        r.code,
                        money(r.amount_minor),
                        money(r.amount_minor - spent),
                        money(spent),
                        text_cell(r.for_name),
                        at(r.created_at),
                        text_cell(r.issued_by_name),
                        r.customer_id or "",
                        _phone(r),
                        at(r.claimed_at),
                        at(r.expires_at),
                        text_cell(
                            "\n".join(
                                f"{at(when)} {money(amount)} {staff}"
                                for when, amount, staff in spendings
                            )
                        ),
                    ]
                )
            yield rows

    # ---- one customer's data (/mydata) --------------------------------------------------------

    async def my_data(self, tg_user_id: int) -> MyData | None:
        """Everything stored about the customer of this Telegram account, from one read
        transaction; None when there is no such customer."""
        async with self.db.reading() as repos:
            await repos.exporting.one_snapshot()
            rows = await repos.exporting.person(tg_user_id)
            if rows is None:
                return None
            return self._my_data(rows)

    def _my_data(self, rows: PersonRows) -> MyData:
        c = rows.customer
        services = {s.id: s.name for s in self.business.services}
        masters = {m.id: m.name for m in self.business.masters}
        at = self._iso
        now = self.clock.now()
        document: dict[str, Any] = {
            "business": self.business.name,
            "exported_at": at(now),
            "profile": {
                "id": c.id,
                "telegram_id": c.tg_user_id,
                "username": c.username,
                "name": c.name,
                "phone": c.phone,
                "birthday": birthday_cell(c.birth_day, c.birth_month, c.birth_year) or None,
                "language": c.language,
                "source": c.source,
                "offers": not c.marketing_opt_out,
                "data_consent_version": c.data_consent_version,
                "created_at": at(c.created_at),
                "onboarded_at": at(c.onboarded_at),
                "imported_at": at(c.imported_at),
                "blocked_at": at(c.blocked_at),
            },
            "consents": [
                {
                    "kind": x.kind,
                    "granted": x.granted,
                    "version": x.version,
                    "via": x.via,
                    "at": at(x.at),
                }
                for x in rows.consents
            ],
            "visits": [
                {
                    "id": x.id,
                    "at": at(x.at),
                    "service": _named(x.service_id, services),
                    "master": _named(x.master_id, masters),
                    "amount": money(x.amount_minor),
                    "recorded_by": x.staff_name,
                    # staff cancelled it (recorded by mistake): it counts nowhere
                    "cancelled_at": at(x.cancelled_at),
                }
                for x in rows.visits
            ],
            "coupons": [
                {
                    "code": x.code,
                    "kind": x.kind,
                    "percent": x.percent,
                    "amount": money(x.amount * 100) if x.amount is not None else None,
                    "issued_at": at(x.issued_at),
                    "expires_at": at(x.expires_at),
                    "redeemed_at": at(x.redeemed_at),
                    "voided_at": at(x.voided_at),
                }
                for x in rows.coupons
            ],
            "bookings": [
                {
                    "id": x.id,
                    "service": _named(x.service_id, services),
                    "master": _named(x.master_id, masters),
                    "starts_at": at(x.starts_at),
                    "ends_at": at(x.ends_at),
                    "state": x.state,
                    "source": x.source,
                    "created_at": at(x.created_at),
                    "reason": x.reason,
                    "visit_id": x.purchase_id,
                }
                for x in rows.bookings
            ],
            "surveys": [
                {
                    "visit_id": x.purchase_id,
                    "service": _named(x.service_id, services),
                    "master": _named(x.master_id, masters),
                    "asked_at": at(x.planned_at),
                    "answered_at": at(x.answered_at),
                    "score": x.score,
                    "comment": x.comment,
                }
                for x in rows.surveys
            ],
            "care_chat": [
                {
                    "at": at(x.at),
                    "from": "you" if x.direction == "in" else "staff",
                    "kind": x.kind,
                    "text": x.text,
                }
                for x in rows.care
            ],
            "staff_notes": [
                {"at": at(x.at), "by": x.staff_name, "text": x.text} for x in rows.notes
            ],
            "staff_actions": [
                {"at": at(x.at), "by": x.staff_name, "action": x.action, "details": x.details}
                for x in rows.staff_actions
            ],
            "rhythm": [
                {
                    "service": _named(x.service_id, services),
                    "every_days": round(x.interval_days, 1),
                    "last_visit": at(x.last_visit_at),
                    "next_offer_at": at(x.offer_at),
                }
                for x in rows.cycles
            ],
            "points": [
                {
                    "at": at(x.created_at),
                    "kind": x.kind,
                    "points": x.points,
                    "visit_id": x.purchase_id,
                    "expires_at": at(x.expires_at),
                    "by": x.staff_name,
                    "reason": x.reason,
                }
                for x in rows.points
            ],
            "loyalty_tier": [
                {"tier": x.tier, "since": at(x.since), "drops_at": at(x.drops_at)}
                for x in rows.tier
            ],
            "points_payments": [
                {
                    "asked_at": at(x.created_at),
                    "visit_id": x.purchase_id,
                    "points": x.points,
                    "amount_before": money(x.amount_minor),
                    "state": x.state,
                    "answered_at": at(x.decided_at),
                    "asked_by": x.staff_name,
                }
                for x in rows.points_requests
            ],
            "bring_a_friend": {
                "your_link": [x.token for x in rows.referral_link],
                # who brought them, and whom they brought, without the other person's identity
                "you_came_through_a_friend": [
                    {"joined_at": at(x.joined_at), "state": x.state}
                    for x in rows.referrals
                    if x.friend_id == c.id
                ],
                "friends_you_brought": [
                    {"joined_at": at(x.joined_at), "bought_at": at(x.bought_at), "state": x.state}
                    for x in rows.referrals
                    if x.referrer_id == c.id
                ],
            },
            "gift_certificates": [
                {
                    "code": x.code,
                    "amount": money(x.amount_minor),
                    "for": x.for_name,
                    "claimed_at": at(x.claimed_at),
                    "expires_at": at(x.expires_at),
                    "used": [
                        {"at": at(u.at), "amount": money(u.amount_minor), "by": u.staff_name}
                        for u in rows.certificate_uses
                        if u.certificate_id == x.id
                    ],
                }
                for x in rows.certificates
            ],
            "waitlist": [
                {
                    "service": _named(x.service_id, services),
                    "master": _named(x.master_id, masters),
                    "first_day": x.first_day.isoformat(),
                    "last_day": x.last_day.isoformat(),
                    "from_minute": x.from_minute,
                    "to_minute": x.to_minute,
                    "joined_at": at(x.created_at),
                }
                for x in rows.waitlist
            ],
            "waitlist_offers": [
                {
                    "service": _named(x.service_id, services),
                    "master": _named(x.master_id, masters),
                    "starts_at": at(x.starts_at),
                    "offered_at": at(x.offered_at),
                    "state": x.state,
                }
                for x in rows.waitlist_offers
            ],
            "stamp_card": self._stamp_card(rows, now),
            # deposits (bot/services/deposits.py): what each visit asked and what was paid
            "deposits": [
                {
                    "visit_id": x.booking_id,
                    "service": _named(x.service_id, services),
                    "amount": money(x.amount_minor),
                    "currency": x.currency,
                    "state": x.state,
                    "asked_at": at(x.created_at),
                    "paid_at": at(x.paid_at),
                    "telegram_payment_id": x.telegram_charge_id,
                    "provider_payment_id": x.provider_charge_id,
                    "why": x.reason,
                }
                for x in rows.deposits
            ],
            "only_with_deposit": [
                {"since": at(x.at), "by": x.staff_name} for x in rows.deposit_mark
            ],
            "prepaid_packages": [
                {
                    "package": x.name,
                    "service": _named(x.service_id, services),
                    "visits": x.visits,
                    "left": x.visits - x.used,
                    "price": money(x.price_minor),
                    "bought_at": at(x.sold_at),
                    "bought_with_visit_id": x.purchase_id,
                    "expires_at": at(x.expires_at),
                    "withdrawn_at": at(x.withdrawn_at),
                    "visits_paid": [
                        {"at": at(v.at), "visit_id": v.purchase_id}
                        for v in rows.package_visits
                        if v.package_id == x.id
                    ],
                }
                for x in rows.packages
            ],
            # Telegram Business (bot/services/business_chats.py): their chats with the salon's
            # own accounts; the words are those of the care chat above
            "business_chat": [
                {
                    "at": at(x.at),
                    "account": x.owner_name,
                    "from": "account" if x.from_owner else "you",
                    "text": x.text,
                    "edited_at": at(x.edited_at),
                    "deleted_at": at(x.deleted_at),
                }
                for x in rows.business
            ],
            "messages_from_us": [
                {"at": at(x.sent_at), "kind": x.kind, "template": x.template, "text": x.text}
                for x in rows.messages
            ],
        }
        latest = {x.kind: x for x in rows.consents}  # in order: the last of each kind wins
        data, offers = latest.get(ConsentKind.PERSONAL_DATA), latest.get(ConsentKind.MARKETING)
        summary = MyDataSummary(
            name=c.name,
            phone=c.phone,
            birthday=Birthday(c.birth_day, c.birth_month, c.birth_year)
            if c.birth_day and c.birth_month
            else None,
            data_consent=data.granted if data else None,
            data_consent_at=data.at if data else None,
            data_consent_version=data.version if data else None,
            offers=not c.marketing_opt_out,
            offers_since=offers.at if offers else None,
            consents=len(rows.consents),
            visits=sum(1 for x in rows.visits if x.cancelled_at is None),
            spent=money(sum(x.amount_minor for x in rows.visits if x.cancelled_at is None)),
            coupons=len(rows.coupons),
            bookings=len(rows.bookings),
            answers=sum(x.answered_at is not None for x in rows.surveys),
            care_messages=len(rows.care),
            notes=len(rows.notes),
            messages=len(rows.messages),
        )
        body = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode()
        return MyData(
            document=body, filename=f"mydata-{self.today().isoformat()}.json", summary=summary
        )

    def _stamp_card(self, rows: PersonRows, now: datetime) -> dict[str, Any]:
        """Their stamp card: the progress as /card shows it, and every line of it."""
        card = card_of(self.business.loyalty.stamps, rows.stamps, now)
        return {
            "progress": f"{card.stamps}/{card.every} {card.marks}",
            "stamps": card.stamps,
            "of": card.every,
            "history": [
                {
                    "at": self._iso(x.at),
                    "kind": x.kind,
                    "visit_id": x.purchase_id,
                    "coupon": next((c.code for c in rows.coupons if c.id == x.coupon_id), None),
                }
                for x in rows.stamps
            ],
        }

    def _iso(self, value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(self.tz).isoformat(timespec="seconds")


@dataclass(frozen=True)
class MyDataSummary:
    """What the readable message beside the file says."""

    name: str | None
    phone: str | None
    birthday: Birthday | None
    data_consent: bool | None
    data_consent_at: datetime | None
    data_consent_version: str | None
    offers: bool
    offers_since: datetime | None
    consents: int
    visits: int
    spent: str
    coupons: int
    bookings: int
    answers: int
    care_messages: int
    notes: int
    messages: int


@dataclass(frozen=True)
class MyData:
    document: bytes  # JSON, UTF-8
    filename: str
    summary: MyDataSummary


def _named(item_id: str | None, names: dict[str, str]) -> dict[str, str | None] | None:
    return None if item_id is None else {"id": item_id, "name": names.get(item_id)}


def _phone(row: Any) -> str:
    return "" if row.erased_at is not None else row.phone or ""


async def _write_csv(stream: IO[str], columns: tuple[str, ...], pages: Rows) -> int:
    writer = csv.writer(stream)  # Excel's dialect: commas, "" inside quotes, CRLF
    writer.writerow(columns)
    count = 0
    async for rows in pages:
        writer.writerows(rows)
        count += len(rows)
    return count
