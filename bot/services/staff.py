"""What staff do from the admin chat: find a customer, record a sale, redeem a coupon, add a
note. Every action is audited with who did it and when."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bot.business import Business, Master, Package, Service
from bot.clock import Clock
from bot.db.models import Coupon, Customer, Purchase, StaffAction, StaffNote
from bot.db.repositories import Database, Repos
from bot.events import Events, PurchaseRecorded
from bot.rendering import Renderer
from bot.services.coupons import CODE_ALPHABET, CODE_LENGTH, CouponView, normalize_code
from bot.services.packages import PackageState, paid_in, sell_in, take_visit_in
from bot.services.phones import normalize_phone
from bot.telegram_text import fit_shortened, shorten_fields, truncate_text

MAX_AMOUNT_MINOR = 100_000_000 * 100  # a hundred million: anything above is a typo
MAX_NOTE = 2000
HISTORY_LIMIT = 15


@dataclass(frozen=True)
class Staff:
    """A member of the admin chat acting now."""

    id: int
    name: str


@dataclass(frozen=True)
class CustomerCard:
    id: int
    name: str | None
    phone: str | None
    username: str | None
    source: str | None
    visits: int
    spent_minor: int
    last_visit: datetime | None
    coupons: list[CouponView]
    last_note: str | None
    blocked: bool
    marketing: bool
    registered: bool
    tg_user_id: int | None
    csat_answers: int = 0
    csat_average: float | None = None
    no_shows: int = 0
    next_visit: datetime | None = None
    imported: bool = False  # from the owner's previous base (not in Telegram while no tg_user_id)
    data_consent_version: str | None = None  # the privacy version they agreed to; None: none
    data_consent_at: datetime | None = None
    offers_consent_at: datetime | None = None  # when they last answered about offers


class UsageError(ValueError):
    """Arguments a staff member typed that do not parse; `reason` picks the explanation."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class RedeemOutcome(StrEnum):
    REDEEMED = "redeemed"
    NOT_FOUND = "not_found"
    ALREADY_USED = "already_used"
    EXPIRED = "expired"
    VOIDED = "voided"
    OTHER_CUSTOMER = "other_customer"


@dataclass(frozen=True)
class RedeemResult:
    outcome: RedeemOutcome
    code: str
    coupon: CouponView | None = None
    customer: CustomerCard | None = None
    redeemed_at: datetime | None = None
    redeemed_by: str | None = None


@dataclass(frozen=True)
class Sale:
    purchase_id: int
    customer: CustomerCard
    amount_minor: int
    service: Service | None
    master_name: str | None
    staff: Staff
    points: int = (
        0  # the customer's loyalty points after the sale's cashback (bot/services/loyalty.py)
    )
    tier: str | None = None  # their club tier (bot/services/tiers.py)
    # the prepaid package this sale bought, or whose visit paid it (bot/services/packages.py)
    package: PackageState | None = None
    stamps: Any = None  # their stamp card after this sale, a StampCard (bot/services/stamps.py)


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    staff_name: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)


# free text on a card, most expendable first: what staff typed, then what the customer did
CARD_FREE_TEXT = ("last_note", "source", "name", "username")


def card_text(render: Renderer, lang: str, card: CustomerCard, business: Business) -> str:
    """The customer card as one message that always fits: a long note or name is shortened
    (with "…"), never the reason the card cannot be shown."""
    return shorten_fields(
        lambda c: render.text(lang, "staff_card", card=c, business=business), card, CARD_FREE_TEXT
    )


def history_text(
    render: Renderer, lang: str, card: CustomerCard, history: list[HistoryEntry], business: Business
) -> str:
    """A customer's history in one message: long notes in it are cut, all to the same length."""

    def shown(cap: int | None) -> str:
        entries = (
            history
            if cap is None
            else [
                replace(
                    e, details={**e.details, "text": truncate_text(str(e.details["text"]), cap)}
                )
                if e.details.get("text")
                else e
                for e in history
            ]
        )
        return render.text(lang, "staff_history", card=card, history=entries, business=business)

    longest = max((len(str(e.details.get("text") or "")) * 2 for e in history), default=0)
    return fit_shortened(shown, longest)


def parse_amount(text: str) -> int:
    """ "1500", "1 500", "1500,50" → minor units; raise UsageError("amount") otherwise."""
    cleaned = text.replace(" ", "").replace("\u00a0", "").replace(",", ".").removesuffix("₽")
    if not re.fullmatch(r"\d{1,12}(\.\d{1,2})?", cleaned):
        raise UsageError("amount", value=text)
    minor = int(Decimal(cleaned) * 100)
    if not 0 < minor <= MAX_AMOUNT_MINOR:
        raise UsageError("amount", value=text)
    return minor


def find_service(business: Business, text: str) -> Service:
    """A service by its id or (the start of) its name, case-insensitive."""
    wanted = text.strip().casefold()
    exact = [s for s in business.services if wanted in (s.id, s.name.casefold())]
    if exact:
        return exact[0]
    started = [s for s in business.services if s.name.casefold().startswith(wanted)]
    if len(started) == 1:
        return started[0]
    raise UsageError("service", value=text, known=[s.name for s in business.services])


@dataclass(frozen=True)
class SaleCommand:
    customer_query: str
    amount_minor: int
    service_id: str | None
    master_id: str | None
    points: int | None = None  # `points:N`: ask the customer to pay N points of it (points_pay)
    package: str | None = None  # `package:<name>`: the sale buys that prepaid package


PAY_WORDS = ("points", "баллы", "баллами")
PAY_POINTS = re.compile(r"(?:points|баллы|баллами):(\d{1,7})", re.IGNORECASE)


def split_customer(tokens: list[str]) -> tuple[str, list[str]]:
    """The customer part of a command's arguments and the rest.

    The customer is one word (#12, @username, a name, a phone without spaces), or a phone
    typed with spaces ("+7 916 123 45 67"): the longest run of leading words that is a phone.
    """
    for length in range(min(6, len(tokens)), 1, -1):
        candidate = " ".join(tokens[:length])
        if re.fullmatch(r"[+\d][\d\s()\-]*", candidate) and normalize_phone(candidate):
            return candidate, tokens[length:]
    return tokens[0], tokens[1:]


def find_master(business: Business, text: str) -> str | None:
    wanted = text.strip().lstrip("@").casefold()
    return next((m.id for m in business.masters if wanted in (m.id, m.name.casefold())), None)


def check_master_does(business: Business, service: Service | None, master: Master | None) -> None:
    """UsageError("master_service") naming who does the service, when the master does not."""
    if service is None or master is None:
        return
    doers = business.masters_of(service)
    if master not in doers:
        raise UsageError(
            "master_service",
            value=master.name,
            service=service.name,
            masters=[m.name for m in doers],
        )


PACKAGE_WORDS = ("package", "абонемент")


def _package_of(tokens: list[str], business: Business) -> tuple[list[str], Package | None]:
    """`package:<name>` taken out of a sale's words: the package of that name in the business
    file (UsageError "package_unknown", naming those there are, otherwise)."""
    rest: list[str] = []
    found: Package | None = None
    for token in tokens:
        word, colon, name = token.partition(":")
        if not colon or word.casefold() not in PACKAGE_WORDS:
            rest.append(token)
            continue
        package = business.loyalty.package(name)
        if found is not None or package is None:
            raise UsageError(
                "package_unknown", value=name, known=[p.name for p in business.loyalty.packages]
            )
        found = package
    return rest, found


def _package_sale(
    tokens: list[str], business: Business, package: Package, points: int | None
) -> SaleCommand:
    """`<customer> [amount] [master]` of a package's sale: its price unless an amount is typed.
    No service: the package's visits are the later sales of its service."""
    if not tokens:
        raise UsageError("sale_usage")
    customer, rest = split_customer(tokens)
    amount = package.price * 100
    if rest and re.fullmatch(r"[\d\s.,₽]+", rest[0]):
        amount = parse_amount(rest[0])
        rest = rest[1:]
    master_id = find_master(business, rest[0]) if len(rest) == 1 else None
    if rest and master_id is None:
        raise UsageError("package_words", value=" ".join(rest), package=package.name)
    return SaleCommand(customer, amount, None, master_id, points, package.name)


def parse_sale(args: str, business: Business) -> SaleCommand:
    """`<customer> <amount> [service] [master] [points:N]`, e.g. `+79161234567 1500 маникюр Анна`;
    a package sold: `<customer> [amount] [master] package:<name>` (`_package_sale`)."""
    tokens, package = _package_of(args.split(), business)
    points: int | None = None
    rest_tokens: list[str] = []
    for token in tokens:
        if token.split(":")[0].casefold() not in PAY_WORDS:
            rest_tokens.append(token)
        elif points is None and (found := PAY_POINTS.fullmatch(token)):
            points = int(found.group(1))
        else:
            raise UsageError("sale_usage")
    tokens = rest_tokens
    if package is not None:
        return _package_sale(tokens, business, package, points)
    if len(tokens) < 2:
        raise UsageError("sale_usage")
    customer, rest = split_customer(tokens)
    if not rest:
        raise UsageError("sale_usage")
    amount = parse_amount(rest[0])
    words = rest[1:]
    service_id = master_id = None
    if words:
        try:
            service_id = find_service(business, " ".join(words)).id
        except UsageError:
            master_id = find_master(business, words[-1])
            if master_id is None:
                raise
            if words[:-1]:
                service_id = find_service(business, " ".join(words[:-1])).id
    check_master_does(business, business.service(service_id), business.master(master_id))
    return SaleCommand(customer, amount, service_id, master_id, points)


class StaffService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, events: Events
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.events = events

    # ---- finding customers ------------------------------------------------------------------

    async def _search(self, repos: Repos, query: str) -> list[Customer]:
        text = query.strip()
        if re.fullmatch(r"#\d{1,12}", text):
            customer = await repos.customers.get(int(text[1:]))
            return [customer] if customer and customer.erased_at is None else []
        if text.startswith("@") and len(text) > 1:
            return await repos.customers.by_username(text[1:])
        if phone := normalize_phone(text):
            return await repos.customers.by_phone(phone)
        digits = re.sub(r"[\s()\-+]", "", text)
        if digits.isdigit() and 4 <= len(digits) <= 10:
            return await repos.customers.by_phone_tail(digits)
        code = normalize_code(text)
        if (
            len(code) == CODE_LENGTH
            and set(code) <= set(CODE_ALPHABET)
            and text.replace("-", "").isalnum()
        ):
            coupon = await repos.coupons.by_code(code)
            if coupon and coupon.customer_id:
                owner = await repos.customers.get(coupon.customer_id)
                return [owner] if owner and owner.erased_at is None else []
        if len(text) >= 2:
            return await repos.customers.by_name(text.casefold())
        return []

    async def find(self, query: str) -> list[CustomerCard]:
        async with self.db.reading() as repos:
            return await self._cards(repos, await self._search(repos, query))

    async def resolve(self, query: str) -> CustomerCard:
        """Exactly one customer for `query`, or UsageError("not_found" | "ambiguous")."""
        found = await self.find(query)
        if not found:
            raise UsageError("not_found", query=query)
        if len(found) > 1:
            raise UsageError("ambiguous", query=query, matches=found)
        return found[0]

    async def card(self, customer_id: int) -> CustomerCard | None:
        async with self.db.reading() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.erased_at is not None:
                return None
            return await self._card(repos, customer)

    async def _card(self, repos: Repos, customer: Customer) -> CustomerCard:
        return (await self._cards(repos, [customer]))[0]

    async def _cards(self, repos: Repos, customers: list[Customer]) -> list[CustomerCard]:
        """The cards of these customers in two queries, however many they are and however long
        their histories (a search shows up to ten)."""
        if not customers:
            return []
        now = self.clock.now()
        ids = [c.id for c in customers]
        facts = await repos.customers.card_facts(ids, now)
        coupons = await repos.coupons.active_of(ids, now)
        return [
            CustomerCard(
                id=customer.id,
                name=customer.name,
                phone=customer.phone,
                username=customer.username,
                source=customer.source,
                visits=facts[customer.id].visits,
                spent_minor=facts[customer.id].spent_minor,
                last_visit=facts[customer.id].last_visit,
                coupons=[CouponView.of(c, self.tz) for c in coupons.get(customer.id, [])],
                last_note=facts[customer.id].last_note,
                blocked=customer.blocked_at is not None,
                marketing=not customer.marketing_opt_out,
                registered=customer.onboarded_at is not None,
                tg_user_id=customer.tg_user_id,
                csat_answers=facts[customer.id].csat_answers,
                csat_average=facts[customer.id].csat_average,
                no_shows=facts[customer.id].no_shows,
                next_visit=facts[customer.id].next_visit,
                imported=customer.imported_at is not None,
                data_consent_version=customer.data_consent_version,
                data_consent_at=facts[customer.id].data_consent_at,
                offers_consent_at=facts[customer.id].offers_consent_at,
            )
            for customer in customers
        ]

    # ---- actions ----------------------------------------------------------------------------

    def _audit(
        self, repos: Repos, staff: Staff, action: str, customer_id: int | None, **details: Any
    ) -> None:
        repos.audit.record(
            StaffAction(
                at=self.clock.now(),
                staff_id=staff.id,
                staff_name=staff.name,
                action=action,
                customer_id=customer_id,
                details=details,
            )
        )

    async def record_sale(
        self,
        staff: Staff,
        customer_id: int,
        amount_minor: int,
        service_id: str | None = None,
        master_id: str | None = None,
        *,
        package: str | None = None,
    ) -> Sale:
        async with self.db.transaction() as repos:
            return await self.record_sale_in(
                repos, staff, customer_id, amount_minor, service_id, master_id, package=package
            )

    async def record_sale_in(
        self,
        repos: Repos,
        staff: Staff,
        customer_id: int,
        amount_minor: int,
        service_id: str | None = None,
        master_id: str | None = None,
        *,
        as_booked: bool = False,
        package: str | None = None,
    ) -> Sale:
        """Record a purchase inside the caller's transaction (a visit marked done records its sale
        together with the visit's new state, so a double tap cannot record it twice).

        The master must do the service, as the business file says; a visit closed `as_booked`
        was checked when it was booked and is recorded as it happened, even if the file changed
        since.

        `package`: the sale buys that prepaid package (bot/services/packages.py). Otherwise a sale
        of a service the customer holds a valid package of, with visits left, uses one of them:
        recorded with amount 0 (not charged again, no cashback), marked as paid by it."""
        if not 0 < amount_minor <= MAX_AMOUNT_MINOR:
            raise UsageError("amount", value=str(amount_minor / 100))
        package_rule = self.business.loyalty.package(package) if package is not None else None
        if package is not None and package_rule is None:
            raise UsageError(
                "package_unknown",
                value=package,
                known=[p.name for p in self.business.loyalty.packages],
            )
        service = self.business.service(service_id)
        if service_id is not None and service is None:
            raise UsageError(
                "service", value=service_id, known=[s.name for s in self.business.services]
            )
        master = self.business.master(master_id)
        if master_id is not None and master is None:
            raise UsageError("master", value=master_id)
        if not as_booked:
            check_master_does(self.business, service, master)
        now = self.clock.now()
        customer = await repos.customers.get(customer_id, for_update=True)
        if customer is None or customer.erased_at is not None:
            raise UsageError("not_found", query=f"#{customer_id}")
        paid_by = None if package_rule else await take_visit_in(repos, customer.id, service_id, now)
        if paid_by is not None:
            amount_minor = 0  # a visit the package paid: not charged again, no cashback
        purchase = await repos.purchases.add(
            Purchase(
                customer_id=customer.id,
                amount_minor=amount_minor,
                service_id=service_id,
                master_id=master_id,
                at=now,
                staff_id=staff.id,
                staff_name=staff.name,
            )
        )
        bought = None
        if paid_by is not None:
            bought = await paid_in(repos, self.business, paid_by, purchase.id, now)
        elif package_rule is not None:
            bought = await sell_in(
                repos, self.business, package_rule, customer.id, purchase.id, amount_minor, now
            )
        self._audit(
            repos,
            staff,
            "sale",
            customer.id,
            amount_minor=amount_minor,
            service=service.name if service else None,
            master=master.name if master else None,
            **({"package": bought.name, "package_sold": bought.sold} if bought else {}),
        )
        await self.events.purchase_recorded(
            repos,
            PurchaseRecorded(
                purchase_id=purchase.id,
                customer_id=customer.id,
                amount_minor=amount_minor,
                service_id=service_id,
                master_id=master_id,
                at=now,
            ),
        )
        card = await self._card(repos, customer)
        return Sale(
            purchase.id,
            card,
            amount_minor,
            service,
            master.name if master else None,
            staff,
            points=await repos.loyalty.balance(customer.id),  # the subscribers' accrual included
            tier=getattr(
                self.business.loyalty.tier(await repos.tiers.name_of(customer.id)), "name", None
            ),
            package=bought,
            stamps=await self._stamps(repos, customer.id, purchase.id, now),
        )

    async def _stamps(self, repos: Repos, customer_id: int, purchase_id: int, now: datetime) -> Any:
        # imported here: bot.services.stamps → loyalty → staff
        from bot.services.stamps import card_in

        return await card_in(repos, self.business.loyalty.stamps, customer_id, now, purchase_id)

    async def redeem(
        self, staff: Staff, code_text: str, customer_id: int | None = None
    ) -> RedeemResult:
        """Redeem a coupon by code; with `customer_id`, only that customer's coupon."""
        code = normalize_code(code_text)
        now = self.clock.now()
        async with self.db.transaction() as repos:
            coupon = await repos.coupons.by_code(code) if code else None
            if coupon is None:
                return RedeemResult(RedeemOutcome.NOT_FOUND, code or code_text)
            if customer_id is not None and coupon.customer_id not in (None, customer_id):
                return RedeemResult(RedeemOutcome.OTHER_CUSTOMER, code)
            redeemed = await repos.coupons.redeem(coupon.id, now, staff.id, staff.name)
            await repos.coupons.reload(coupon)
            owner = await repos.customers.get(coupon.customer_id) if coupon.customer_id else None
            card = await self._card(repos, owner) if owner and owner.erased_at is None else None
            view = CouponView.of(coupon, self.tz)
            if redeemed:
                self._audit(repos, staff, "redeem", coupon.customer_id, code=code, kind=coupon.kind)
                return RedeemResult(RedeemOutcome.REDEEMED, code, view, card, now, staff.name)
            return self._why_not(coupon, view, card, now)

    @staticmethod
    def _why_not(
        coupon: Coupon, view: CouponView, card: CustomerCard | None, now: datetime
    ) -> RedeemResult:
        if coupon.redeemed_at is not None:
            return RedeemResult(
                RedeemOutcome.ALREADY_USED,
                coupon.code,
                view,
                card,
                coupon.redeemed_at,
                coupon.redeemed_by_name,
            )
        if coupon.voided_at is not None:
            return RedeemResult(RedeemOutcome.VOIDED, coupon.code, view, card)
        return RedeemResult(RedeemOutcome.EXPIRED, coupon.code, view, card)

    async def add_note(self, staff: Staff, customer_id: int, text: str) -> CustomerCard:
        note = " ".join(text.split())
        if not note:
            raise UsageError("note_empty")
        if len(note) > MAX_NOTE:
            raise UsageError("note_long", limit=MAX_NOTE)
        async with self.db.transaction() as repos:
            customer = await repos.customers.get(customer_id)
            if customer is None or customer.erased_at is not None:
                raise UsageError("not_found", query=f"#{customer_id}")
            repos.notes.add(
                StaffNote(
                    customer_id=customer.id,
                    text=note,
                    staff_id=staff.id,
                    staff_name=staff.name,
                    at=self.clock.now(),
                )
            )
            self._audit(repos, staff, "note", customer.id, text=note)
            return await self._card(repos, customer)

    async def history(self, customer_id: int) -> list[HistoryEntry]:
        async with self.db.transaction() as repos:
            actions = await repos.audit.of_customer(customer_id, HISTORY_LIMIT)
            imported = await repos.purchases.imported_of(customer_id, HISTORY_LIMIT)
        entries = [
            HistoryEntry(a.at, a.staff_name, a.action, dict(a.details or {})) for a in actions
        ] + [self._imported_visit(p) for p in imported]
        entries.sort(key=lambda e: e.at, reverse=True)
        return entries[:HISTORY_LIMIT]

    def _imported_visit(self, purchase: Purchase) -> HistoryEntry:
        """A visit from the owner's previous base: no staff action recorded it here."""
        service = self.business.service(purchase.service_id)
        master = self.business.master(purchase.master_id)
        return HistoryEntry(
            purchase.at,
            purchase.staff_name or "",
            "imported_visit",
            {
                "amount_minor": purchase.amount_minor,
                "service": service.name if service else purchase.service_id,
                "master": master.name if master else purchase.master_id,
            },
        )
