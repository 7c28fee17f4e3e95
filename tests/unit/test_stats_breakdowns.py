"""`/stats masters|sources|funnel`: every number checked against a base built by hand for October
2026 (Moscow), with the edges that decide them: the period's first and last moments, history
before it (imported too), two sales at the same moment, a master gone from the business file,
sales without a master, a reconsent, an erased customer, an imported customer recognised in
Telegram and one who never joined."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.business import Business
from bot.clock import FixedClock
from bot.db.models import (
    Booking,
    BookingState,
    Consent,
    ConsentKind,
    ConsentVia,
    Coupon,
    Customer,
    Purchase,
    Survey,
)
from bot.db.repositories import Database
from bot.rendering import Renderer
from bot.services.onboarding_starts import OnboardingStarts
from bot.services.stats import Period, StatsService
from bot.services.stats_breakdowns import (
    MasterFigures,
    SourceFigures,
    StatsBreakdownService,
    drops,
)
from bot.services.stats_figures import FUNNEL_KEYS, FunnelStep
from bot.telegram_text import TEXT_LIMIT, visible_len
from handlers.stats_breakdowns import TOP_MASTERS, TOP_SOURCES

MOSCOW = ZoneInfo("Europe/Moscow")
OCTOBER = Period(date(2026, 10, 1), date(2026, 10, 31))


def local(m: int, d: int, hh: int = 12, mm: int = 0, y: int = 2026) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=MOSCOW)


@pytest.fixture
def breakdowns(db: Database, clock: FixedClock, business: Business) -> StatsBreakdownService:
    return StatsBreakdownService(db, clock, MOSCOW, business)


async def add(db: Database, *rows: Any) -> list[Any]:
    async with db.transaction() as repos:
        for row in rows:
            repos.session.add(row)
            await repos.session.flush()
    return list(rows)


async def customer(db: Database, **fields: Any) -> int:
    fields.setdefault("created_at", local(1, 1))
    (row,) = await add(db, Customer(**fields))
    return int(row.id)


def sale(customer_id: int, at: datetime, master: str | None, amount: int = 100000, **kw: Any):  # type: ignore[no-untyped-def]
    return Purchase(customer_id=customer_id, at=at, master_id=master, amount_minor=amount, **kw)


def survey(purchase: Purchase, master: str | None, score: int | None, answered: datetime | None):  # type: ignore[no-untyped-def]
    return Survey(
        purchase_id=purchase.id,
        customer_id=purchase.customer_id,
        master_id=master,
        planned_at=purchase.at,
        closes_at=purchase.at + timedelta(days=3),
        score=score,
        answered_at=answered,
    )


def booking(customer_id: int, master: str, starts: datetime, state: BookingState) -> Booking:
    return Booking(
        customer_id=customer_id,
        service_id="manicure",
        master_id=master,
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        state=state,
        source="menu",
        created_at=starts - timedelta(days=2),
        answer_due_at=starts - timedelta(days=1),
    )


async def masters_base(db: Database) -> None:
    """October's sales by master (1 000 ₽ each unless said):

    - c1: 15.09 Anna (before), 05.10 Anna (repeat, 2 000 ₽), 20.10 Olga (repeat)
    - c2: 10.10 Anna (first), 25.10 Anna (repeat), 05.11 Anna (after)
    - c3: an imported visit 01.06 (no master), 12.10 Olga (repeat)
    - c4: 15.10 12:00 twice: Olga (the earlier row: first), no master (repeat, 500 ₽)
    - c5: 31.10 23:30 Anna (first, the period's last minutes), 01.11 00:10 Anna (after)
    - c6: 30.09 23:59 Anna (before), 01.10 00:00 Ivan, no longer in the business file (repeat)

    Anna: 4 sales, 2 repeat (50 %), 5 000 ₽, 3 customers; Olga: 3 sales, 2 repeat, 3 customers;
    Ivan 1 of 1; no master 1 of 1. 9 sales, 6 repeat: the summary's figures.
    Surveys answered in October: Anna 5 and 4 (4,5), Olga 3; not counted: Anna's 1 answered
    30.09, Olga's 1 answered 01.11 00:30, Anna's unanswered one.
    Bookings starting in October: Anna 3 done, 1 no-show (25 %), 1 cancelled, 1 confirmed;
    Olga 2 done (0 %); not counted: Anna's no-show of 30.09."""
    c1, c2, c3, c4, c5, c6 = [await customer(db) for _ in range(6)]
    a1, a2, o1 = await add(
        db,
        sale(c1, local(9, 15), "anna"),
        sale(c1, local(10, 5), "anna", 200000),
        sale(c1, local(10, 20), "olga"),
    )
    a3, a4, _ = await add(
        db,
        sale(c2, local(10, 10), "anna"),
        sale(c2, local(10, 25), "anna"),
        sale(c2, local(11, 5), "anna"),
    )
    _, o2 = await add(
        db, sale(c3, local(6, 1), None, import_key=f"{c3}:x"), sale(c3, local(10, 12), "olga")
    )
    o3, _ = await add(db, sale(c4, local(10, 15), "olga"), sale(c4, local(10, 15), None, 50000))
    await add(db, sale(c5, local(10, 31, 23, 30), "anna"), sale(c5, local(11, 1, 0, 10), "anna"))
    await add(db, sale(c6, local(9, 30, 23, 59), "anna"), sale(c6, local(10, 1, 0, 0), "ivan"))
    await add(
        db,
        survey(a2, "anna", 5, local(10, 6)),
        survey(a4, "anna", 4, local(10, 26)),
        survey(a1, "anna", 1, local(9, 30, 23, 0)),
        survey(a3, "anna", None, None),
        survey(o1, "olga", 3, local(10, 21)),
        survey(o2, "olga", 1, local(11, 1, 0, 30)),
    )
    done, no_show = BookingState.DONE, BookingState.NO_SHOW
    await add(
        db,
        *(booking(c1, "anna", local(10, d), done) for d in (5, 6, 7)),
        booking(c1, "anna", local(10, 8), no_show),
        booking(c1, "anna", local(10, 9), BookingState.CANCELLED),
        booking(c1, "anna", local(10, 30), BookingState.CONFIRMED),
        booking(c1, "anna", local(9, 30, 10), no_show),
        *(booking(c3, "olga", local(10, d), done) for d in (12, 13)),
    )


async def test_masters(db: Database, clock: FixedClock, breakdowns: StatsBreakdownService) -> None:
    await masters_base(db)
    masters = await breakdowns.masters(OCTOBER)
    assert masters == [
        MasterFigures("anna", "Анна", 4, 2, 500000, 3, 2, 9, 3, 1),
        MasterFigures("olga", "Ольга", 3, 2, 300000, 3, 1, 3, 2, 0),
        MasterFigures("ivan", None, 1, 1, 100000, 1),
        MasterFigures(None, None, 1, 1, 50000, 1),
    ]
    anna, olga, ivan, nobody = masters
    assert anna.repeat_share == 0.5 and anna.csat == 4.5 and anna.no_show_rate == 0.25
    assert olga.repeat_share == pytest.approx(2 / 3) and olga.csat == 3.0
    assert olga.no_show_rate == 0.0
    assert ivan.csat is None and ivan.no_show_rate is None
    # the masters' repeat sales add up to the summary's
    summary = await StatsService(db, clock, MOSCOW).report(OCTOBER)
    assert summary.current.sales.sales == sum(m.sales for m in masters) == 9
    assert summary.current.sales.repeat == sum(m.repeat for m in masters) == 6


async def test_an_idle_month_lists_the_masters_with_nothing(
    db: Database, breakdowns: StatsBreakdownService
) -> None:
    await masters_base(db)
    masters = await breakdowns.masters(Period(date(2026, 8, 1), date(2026, 8, 31)))
    assert masters == [MasterFigures("anna", "Анна"), MasterFigures("olga", "Ольга")]
    assert masters[0].repeat_share is None and masters[0].csat is None


async def joined(
    db: Database,
    at: datetime,
    source: str | None,
    *,
    phone: bool = True,
    birthday: bool = True,
    coupon: bool = True,
    bought: tuple[datetime, ...] = (),
    **fields: Any,
) -> int:
    """A customer who agreed to the processing of their data in Telegram at `at`."""
    customer_id = await customer(
        db,
        tg_user_id=fields.pop("tg_user_id", None),
        source=source,
        phone=f"7916{at:%m%d%H%M}" if phone else None,
        birth_month=5 if birthday else None,
        birth_day=17 if birthday else None,
        created_at=at,
        **fields,
    )
    consent = Consent(
        customer_id=customer_id,
        kind=ConsentKind.PERSONAL_DATA,
        granted=True,
        version="1",
        at=at,
        via=ConsentVia.BUTTON,
    )
    rows: list[Any] = [consent, *(sale(customer_id, t, "anna") for t in bought)]
    if coupon:
        rows.append(
            Coupon(
                code=f"W{customer_id}",
                customer_id=customer_id,
                kind="welcome",
                percent=10,
                issued_at=at,
                expires_at=at + timedelta(days=30),
            )
        )
    await add(db, *rows)
    return customer_id


async def sources_base(db: Database) -> None:
    """Who joined in October (Moscow), where they got to by now:

    insta: j1 02.10 all steps, bought 10.10 and 20.11; j2 03.10 all steps, bought once;
      j3 05.10 phone, skipped the birthday, coupon, bought twice; j4 06.10 left at the phone;
      j12 09.10 bought 09.10 then erased (phone and birthday gone, a withdrawal on record)
    vk: j6 31.10 23:59 all steps but no purchase; j9 imported (visit 01.06), recognised: agreed
      12.10, phone, birthday, no coupon (known customer), bought 20.10
    no link: j5 07.10 phone, birthday, no coupon (said no to offers), bought 15.10
    Not in October: j7 (agreed 30.09 23:59), j8 (agreed 15.09, again 10.10 for a new privacy
    text), j10 (imported in October, never in Telegram, with a purchase).

    insta 5 joined: phone 3, birthday 2, coupon 2, first 2, second 1; bought 4, again 2.
    vk 2: phone 2, birthday 2, coupon 1, first 0; bought 1, again 0.
    no link 1: phone 1, birthday 1, coupon 0; bought 1.
    Funnel: 8, 8, 6, 5, 3, 2, 1."""
    await joined(db, local(10, 2), "insta", bought=(local(10, 10), local(11, 20)))
    await joined(db, local(10, 3), "insta", bought=(local(10, 4),))
    await joined(db, local(10, 5), "insta", birthday=False, bought=(local(10, 6), local(10, 7)))
    await joined(db, local(10, 6), "insta", phone=False, birthday=False, coupon=False)
    j12 = await joined(
        db,
        local(10, 9),
        "insta",
        phone=False,
        birthday=False,
        coupon=False,
        bought=(local(10, 9, 13),),
        erased_at=local(10, 15),
    )
    await add(
        db,
        Consent(
            customer_id=j12,
            kind=ConsentKind.PERSONAL_DATA,
            granted=False,
            version="1",
            at=local(10, 15),
            via=ConsentVia.FORGET,
        ),
    )
    await joined(db, local(10, 31, 23, 59), "vk")
    j9 = await joined(
        db,
        local(10, 12),
        "vk",
        coupon=False,
        bought=(local(10, 20),),
        imported_at=local(6, 1),
        tg_user_id=555,
    )
    await add(
        db,
        sale(j9, local(6, 1), None, import_key=f"{j9}:x"),
        Consent(
            customer_id=j9,
            kind=ConsentKind.MARKETING,
            granted=False,
            version="1",
            at=local(6, 1),
            via=ConsentVia.IMPORT,
        ),
    )
    await joined(db, local(10, 7), None, coupon=False, bought=(local(10, 15),))
    await joined(db, local(9, 30, 23, 59), "vk", bought=(local(10, 3),))
    j8 = await joined(db, local(9, 15), "vk")
    await add(
        db,
        Consent(
            customer_id=j8,
            kind=ConsentKind.PERSONAL_DATA,
            granted=True,
            version="2",
            at=local(10, 10),
            via=ConsentVia.BUTTON,
        ),
    )
    j10 = await customer(db, phone="79990001122", imported_at=local(10, 5))
    await add(
        db,
        Consent(
            customer_id=j10,
            kind=ConsentKind.MARKETING,
            granted=False,
            version="1",
            at=local(10, 5),
            via=ConsentVia.IMPORT,
        ),
        sale(j10, local(10, 6), "olga"),
    )


async def test_sources(db: Database, breakdowns: StatsBreakdownService) -> None:
    await sources_base(db)
    sources = await breakdowns.sources(OCTOBER)
    assert sources == [
        SourceFigures("insta", 5, 4, 2),
        SourceFigures("vk", 2, 1, 0),
        SourceFigures(None, 1, 1, 0),
    ]
    assert sources[0].bought_share == 0.8 and sources[0].again_share == 0.5


async def test_funnel(db: Database, breakdowns: StatsBreakdownService) -> None:
    await sources_base(db)
    steps = await breakdowns.funnel(OCTOBER)
    assert steps == [
        FunnelStep(key, n) for key, n in zip(FUNNEL_KEYS, [8, 8, 6, 5, 3, 2, 1], strict=True)
    ]
    assert drops(steps) == [None, 0, 2, 1, 2, 1, 1]
    # the period's edges: j7 joined at 30.09 23:59, j6 at 31.10 23:59
    september = await breakdowns.funnel(Period(date(2026, 9, 30), date(2026, 9, 30)))
    assert [s.customers for s in september] == [1, 1, 1, 1, 1, 1, 0]
    november = await breakdowns.funnel(Period(date(2026, 11, 1), date(2026, 11, 23)))
    assert [s.customers for s in november] == [0] * 7


async def test_funnel_started_counts_the_starts_before_consent(
    db: Database, breakdowns: StatsBreakdownService
) -> None:
    """Two newcomers pressed /start on 14.10 (counted, nothing about them stored) and one
    consented: started 2, consented 1. A start on 30.09 is not October's."""
    clock = FixedClock(local(10, 14))
    starts = OnboardingStarts(db, clock, MOSCOW)
    await starts.count("insta")
    await starts.count(None)
    clock.set(local(9, 30, 23, 59))
    await starts.count("insta")
    await joined(db, local(10, 14, 12, 5), "insta", coupon=False, bought=(local(10, 20),))
    steps = await breakdowns.funnel(OCTOBER)
    assert [s.customers for s in steps] == [2, 1, 1, 1, 0, 0, 0]
    assert drops(steps)[:2] == [None, 1]  # the one lost at the consent question
    september = await breakdowns.funnel(Period(date(2026, 9, 1), date(2026, 9, 30)))
    assert [s.customers for s in september][:2] == [1, 0]


async def test_funnel_started_is_never_fewer_than_consented(
    db: Database, breakdowns: StatsBreakdownService
) -> None:
    """Days before the counter existed have no starts: the 8 who consented in October started."""
    await sources_base(db)
    async with db.transaction() as repos:
        await repos.onboarding_starts.count(date(2026, 10, 31), "vk")  # 1 counted, 8 consented
    steps = await breakdowns.funnel(OCTOBER)
    assert [s.customers for s in steps][:2] == [8, 8]


@pytest.fixture
def render() -> Renderer:
    return Renderer(MOSCOW)


def test_the_texts(render: Renderer) -> None:
    """Names escaped; numbers the Russian way; the top 200 sources and of 40 masters with the
    longest names and figures fit one message (as Telegram counts: visible UTF-16 units)."""
    masters = [
        MasterFigures("anna", "<b>Анна</b>", 4, 2, 500000, 3, 2, 9, 3, 1),
        MasterFigures(None, None, 1, 1, 50000, 1),
    ]
    text = render.text(
        "ru", "stats_breakdowns", usage=False, breakdown="masters", period=OCTOBER,
        shown=masters, hidden=[], currency="₽",
    )  # fmt: skip
    assert "01.10.2026 — 31.10.2026" in text
    assert "<b>&lt;b&gt;Анна&lt;/b&gt;</b>: 4 визита, повторных 2 (50\u00a0%)" in text
    assert "оценка 4,5 (2 ответа) · неявки 25\u00a0% (1 из 4)" in text
    assert "<b>Без мастера</b>: 1 визит, повторных 1 (100\u00a0%) · оценка — · неявки —" in text

    many = [
        MasterFigures(f"m{i}", "Мастер " * 9, 12000, 6001, 0, 0, 3000, 14000, 1000, 111)
        for i in range(40)
    ]
    text = render.text(
        "ru", "stats_breakdowns", usage=False, breakdown="masters", period=OCTOBER,
        shown=many[:TOP_MASTERS], hidden=many[TOP_MASTERS:], currency="₽",
    )  # fmt: skip
    assert "…и ещё 20: 240\u00a0000 визитов." in text and visible_len(text) <= TEXT_LIMIT

    sources = [SourceFigures(f"source_{i:03}_{'x' * 37}", 30000, 10000, 3000) for i in range(200)]
    text = render.text(
        "ru", "stats_breakdowns", usage=False, breakdown="sources", period=OCTOBER,
        sources=sources, shown=sources[:TOP_SOURCES], hidden=sources[TOP_SOURCES:], currency="₽",
    )  # fmt: skip
    assert "…и ещё 175 источников: пришли 5\u00a0250\u00a0000." in text
    assert (
        "Всего: пришли 6\u00a0000\u00a0000 · купили 2\u00a0000\u00a0000 · купили снова 600\u00a0000"
        in text
    )
    assert visible_len(text) <= TEXT_LIMIT

    steps = [FunnelStep(k, n) for k, n in zip(FUNNEL_KEYS, [8, 8, 6, 5, 3, 2, 1], strict=True)]
    text = render.text(
        "ru", "stats_breakdowns", usage=False, breakdown="funnel", period=OCTOBER,
        steps=list(zip(steps, drops(steps), strict=True)), currency="₽",
    )  # fmt: skip
    assert (
        "1. Начали: <b>8</b>\n2. Согласились на обработку данных: <b>8</b> (100\u00a0%)\n" in text
    )
    assert "3. Дали телефон: <b>6</b> (75\u00a0%) · ушли 2" in text
    assert "7. Купили снова: <b>1</b> (12,5\u00a0%) · ушли 1" in text


def test_the_texts_in_english(render: Renderer) -> None:
    masters = [MasterFigures("anna", "Anna", 4, 2, 500000, 3, 2, 9, 3, 1)]
    text = render.text(
        "en", "stats_breakdowns", usage=False, breakdown="masters", period=OCTOBER,
        shown=masters, hidden=[], currency="₽",
    )  # fmt: skip
    assert "By master</b> · 01 Oct 2026 — 31 Oct 2026" in text
    assert "<b>Anna</b>: 4 visits, 2 repeat (50%) · score 4.5 (2 answers)" in text
    assert "no-shows 25% (1 of 4)" in text
    sources = [SourceFigures(None, 1200, 3, 1)]
    text = render.text(
        "en", "stats_breakdowns", usage=False, breakdown="sources", period=OCTOBER,
        sources=sources, shown=sources, hidden=[], currency="₽",
    )  # fmt: skip
    assert "no link: joined 1,200 · bought 3 (0.2%) · bought again 1 (33.3%)" in text
    steps = [FunnelStep(k, n) for k, n in zip(FUNNEL_KEYS, [8, 8, 6, 5, 3, 2, 1], strict=True)]
    text = render.text(
        "en", "stats_breakdowns", usage=False, breakdown="funnel", period=OCTOBER,
        steps=list(zip(steps, drops(steps), strict=True)), currency="₽",
    )  # fmt: skip
    assert "3. Gave their phone: <b>6</b> (75%) · 2 left" in text
