"""Greetings and offers through the outbox, delivered by the sender to the Bot API test server."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.business import Business, Holiday
from bot.clock import FixedClock
from bot.db.models import Coupon, OutboxMessage
from bot.outbox.planners import Planners
from bot.outbox.sender import OutboxSender, Tally
from bot.services.birthdays import Birthday
from bot.services.staff import Staff
from tests.conftest import ADMIN_CHAT, BUSINESS_FILE, make_settings
from tests.e2e.helpers import MOSCOW, app_of, business_with, carebot_cli, carebot_env, msk, onboard
from tests.harness import Renderings
from tests.telegram_server import Call, TelegramServer


@pytest.fixture
def quiet_business(tmp_path: Path) -> Path:
    """The test business without surveys, so these tests count only greetings and offers."""
    return business_with(tmp_path, "enabled = true", "enabled = false")


@pytest.fixture
async def app(
    telegram: TelegramServer, database_url: str, clock: FixedClock, quiet_business: Path
) -> AsyncIterator[App]:
    async with app_of(telegram, database_url, clock, quiet_business) as instance:
        yield instance


async def customer(
    app: App,
    tg: int,
    *,
    name: str = "Анна",
    phone: str = "+79161234567",
    birthday: Birthday | None = None,
    language: str = "ru",
) -> int:
    view = await app.customers.consent(
        tg, name=name, username=None, language=language, source=None, offers=True
    )
    await app.customers.set_phone(tg, phone)
    await app.customers.set_birthday(tg, birthday)
    await app.customers.finish_onboarding(tg)
    return view.id


async def rows(app: App) -> list[OutboxMessage]:
    async with app.db.transaction() as repos:
        return list(await repos.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def sent_calls(telegram: TelegramServer, chat_id: int) -> list[Call]:
    return [
        c for c in telegram.calls if c.method == "sendMessage" and c.chat_id == chat_id and c.result
    ]


def sent_to(telegram: TelegramServer, chat_id: int) -> list[str]:
    return [c.text for c in sent_calls(telegram, chat_id)]


async def test_birthday_greeting_once_with_a_gift(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-03-01T12:00"))
    await customer(app, 7, birthday=Birthday(14, 3, 1990))
    await app.planners.birthdays()
    clock.set(msk("2027-03-14T10:30"))
    result = await app.tick()
    assert result["birthdays"] == 1 and result["outbox_sent"] == 1
    [call] = sent_calls(telegram, 7)
    text = call.text
    assert call.template == "birthday_greeting" and text.startswith("Анна,")
    code = re.search(r"<code>(\w+)</code>", text)
    assert code and "скидка 15%" in text and "21.03.2027" in text
    async with app.db.transaction() as repos:
        coupon = await repos.coupons.by_code(code[1])
    assert coupon and coupon.kind == "birthday" and coupon.customer_id is not None
    assert [c for c in telegram.calls if c.method == "sendMessage"] == [call]
    assert call.labels == ["my_coupons", "unsubscribe"]  # every offer can be stopped

    again = await app.tick()
    assert again["birthdays"] == 0 and again["outbox_sent"] == 0
    clock.set(msk("2027-03-15T11:00"))  # the catch-up day: still nothing twice
    assert (await app.tick())["outbox_sent"] == 0
    assert len(sent_to(telegram, 7)) == 1


async def test_birthday_planned_at_night_goes_out_in_the_morning(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-03-13T12:00"))
    await customer(app, 7, birthday=Birthday(14, 3))
    clock.set(msk("2027-03-14T00:30"))  # 13 March 21:30 UTC: already the 14th in Moscow
    assert (await app.tick())["outbox_sent"] == 0
    [row] = await rows(app)
    assert row.key == "birthday:1:2027" and row.due_at == msk("2027-03-14T10:00")
    clock.set(msk("2027-03-14T09:59"))
    assert (await app.tick())["outbox_sent"] == 0
    clock.set(msk("2027-03-14T10:00"))
    assert (await app.tick())["outbox_sent"] == 1


@pytest.mark.parametrize(
    ("today", "greeted"),
    [("2027-02-28", True), ("2028-02-28", False), ("2028-02-29", True), ("2027-03-01", False)],
)
async def test_leap_day_birthdays(
    app: App, telegram: TelegramServer, clock: FixedClock, today: str, greeted: bool
) -> None:
    clock.set(msk("2026-12-01T12:00"))
    await customer(app, 7, birthday=Birthday(29, 2, 2000))
    clock.set(msk(f"{today}T12:00"))
    await app.planners.birthdays()
    planned = [
        r.key
        for r in await rows(app)
        if r.key.startswith("birthday:")
        and r.not_before.astimezone(MOSCOW).date().isoformat() == today
    ]
    assert bool(planned) is greeted


async def test_a_late_greeting_is_dropped(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-03-14T08:00"))
    await customer(app, 7, birthday=Birthday(14, 3))
    await app.planners.run_all()  # planned, but the bot was down for three days
    clock.set(msk("2027-03-17T12:00"))
    result = await app.tick()
    assert result["outbox_expired"] == 1 and result["outbox_sent"] == 0
    [row] = await rows(app)
    assert (row.state, row.last_error) == ("expired", "late")
    assert sent_to(telegram, 7) == []


async def test_who_gets_no_greeting(app: App, telegram: TelegramServer, clock: FixedClock) -> None:
    clock.set(msk("2027-03-01T12:00"))
    for tg in (7, 8, 9, 10):
        await customer(app, tg, phone=f"+7916123456{tg}", birthday=Birthday(14, 3))
    await app.customers.set_marketing(8, False)  # /stop
    await app.customers.forget(9)  # /forget
    clock.set(msk("2027-03-14T08:00"))
    await app.planners.run_all()
    assert sorted(r.customer_id or 0 for r in await rows(app)) == [1, 4]
    await app.customers.set_marketing(10, False)  # stopped after it was planned
    clock.set(msk("2027-03-14T10:00"))
    result = await app.tick()
    assert result["outbox_sent"] == 1 and result["outbox_skipped"] == 1
    assert [r.last_error for r in await rows(app) if r.state == "skipped"] == ["opted_out"]
    async with app.db.transaction() as repos:
        birthday_coupons = list(
            await repos.session.scalars(select(Coupon).where(Coupon.kind == "birthday"))
        )
    assert len(birthday_coupons) == 1, "no coupon was made for the message that did not go"


async def test_holiday_greetings_with_a_coupon_each(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-03-01T12:00"))
    await customer(app, 7)
    await customer(app, 8, name="Ольга", phone="+79031234567", language="en")
    clock.set(msk("2027-03-08T11:00"))
    result = await app.tick()
    assert result["holidays"] == 2 and result["outbox_sent"] == 2
    [anna_call], [olga_call] = sent_calls(telegram, 7), sent_calls(telegram, 8)
    assert anna_call.template == olga_call.template == "holiday_mar8"
    anna, olga = anna_call.text, olga_call.text
    assert anna.startswith("Анна,")
    assert olga.startswith("Happy International Women's Day, Ольга!")  # in her language
    codes = {re.search(r"<code>(\w+)</code>", t)[1] for t in (anna, olga)}  # type: ignore[index]
    assert len(codes) == 2, "a coupon of one's own"
    assert (await app.tick())["holidays"] == 0


async def test_holiday_audience_by_service(app: App, clock: FixedClock, business: Business) -> None:
    clock.set(msk("2027-04-01T12:00"))
    await customer(app, 7)
    await customer(app, 8, phone="+79031234567")
    await app.staff.record_sale(Staff(1, "Ольга"), 2, 280000, "pedicure")
    holiday = Holiday(
        id="feet",
        date="04-02",
        template="holiday_professional",
        title="День педикюра",
        audience=["pedicure"],
    )
    planners = Planners(app.db, clock, business.model_copy(update={"holidays": [holiday]}), MOSCOW)
    clock.set(msk("2027-04-02T12:00"))
    assert await planners.holidays() == 1
    assert [r.customer_id for r in await rows(app) if r.key.startswith("holiday:")] == [2]


async def test_expiry_reminder_a_day_before(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    await customer(app, 7)  # the welcome coupon is valid through 23 December 2026
    clock.set(msk("2026-12-22T12:00"))
    assert (await app.tick())["expiry_reminders"] == 0
    clock.set(msk("2026-12-23T00:30"))  # within the last day, but at night
    result = await app.tick()
    assert result["expiry_reminders"] == 1 and result["outbox_sent"] == 0
    clock.set(msk("2026-12-23T10:00"))
    assert (await app.tick())["outbox_sent"] == 1
    [call] = sent_calls(telegram, 7)
    assert call.template == "coupon_expiring" and call.text.startswith("Анна,")
    assert "23.12.2026" in call.text
    clock.set(msk("2026-12-23T15:00"))
    assert (await app.tick())["expiry_reminders"] == 0


async def test_thank_you_offer_after_a_purchase(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2026-11-23T12:00"))
    await customer(app, 7)
    await app.staff.record_sale(Staff(1, "Ольга"), 1, 200000, "manicure", "anna")
    assert (await app.tick())["outbox_sent"] == 0
    clock.set(msk("2026-11-23T15:00"))
    assert (await app.tick())["outbox_sent"] == 1
    [call] = sent_calls(telegram, 7)
    assert call.template == "thanks_offer" and call.text.startswith("Анна,")
    assert "«Маникюр с покрытием»" in call.text and "мастера Анна" in call.text  # the last visit
    assert "скидка 5%" in call.text


async def test_at_most_two_offers_a_week(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-03-06T12:00"))
    await customer(app, 7, birthday=Birthday(8, 3))
    for day in (6, 7):
        clock.set(msk(f"2027-03-0{day}T12:00"))
        await app.staff.record_sale(Staff(1, "Ольга"), 1, 100000)
        clock.set(msk(f"2027-03-0{day}T16:00"))
        assert (await app.tick())["outbox_sent"] == 1
    clock.set(msk("2027-03-08T11:00"))  # birthday and 8 March, but the week is full until the 13th,
    result = await app.tick()  # past the last moment of both: they are dropped, not sent
    assert result["outbox_sent"] == 0 and result["outbox_expired"] == 2
    assert {(r.state, r.last_error) for r in await rows(app) if r.state != "sent"} == {
        ("expired", "weekly_cap")
    }
    assert len(sent_to(telegram, 7)) == 2


async def test_telegram_says_retry_after(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    await customer(app, 7)
    await app.staff.record_sale(Staff(1, "Ольга"), 1, 100000)
    clock.advance(timedelta(hours=3))
    telegram.scripted = [(429, "Too Many Requests: retry after 2", 2)]
    first = await app.tick()
    assert first["outbox_throttled"] == 1 and first["outbox_sent"] == 0
    [row] = await rows(app)
    assert row.state == "pending" and row.due_at == clock.now() + timedelta(seconds=2)
    clock.advance(timedelta(seconds=2))
    assert (await app.tick())["outbox_sent"] == 1
    assert len(sent_to(telegram, 7)) == 1


async def test_a_customer_who_blocked_the_bot(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    clock.set(msk("2027-03-08T09:00"))
    await customer(app, 7, birthday=Birthday(8, 3))
    await app.planners.run_all()
    telegram.blocked.add(7)
    clock.set(msk("2027-03-08T10:00"))
    result = await app.tick()
    assert result["outbox_blocked"] == 1 and result["outbox_skipped"] == 1
    states = sorted((r.state, r.last_error or "") for r in await rows(app))
    assert (
        states[0][0] == "failed"
        and states[0][1].startswith("403")
        and states[1] == ("skipped", "blocked")
    )
    assert {r.error_code for r in await rows(app)} == {
        "blocked"
    }  # the 403, and the one known blocked then
    async with app.db.transaction() as repos:
        assert (await repos.customers.get(1)).blocked_at is not None  # type: ignore[union-attr]
        assert (
            list(
                await repos.session.scalars(
                    select(Coupon).where(Coupon.voided_at.is_(None), Coupon.kind != "welcome")
                )
            )
            == []
        )
    await app.staff.record_sale(Staff(1, "Ольга"), 1, 100000)
    clock.advance(timedelta(hours=4))
    assert (await app.tick())["outbox_sent"] == 0


async def test_server_errors_are_retried_with_backoff_then_given_up(
    app: App, telegram: TelegramServer, clock: FixedClock
) -> None:
    await customer(app, 7)
    await app.staff.record_sale(Staff(1, "Ольга"), 1, 100000)
    clock.advance(timedelta(hours=3))
    telegram.scripted = [(500, "Internal Server Error", None), (502, "Bad Gateway", None)]
    assert (await app.tick())["outbox_retried"] == 1
    [row] = await rows(app)
    assert row.attempts == 1 and timedelta(seconds=1) <= row.due_at - clock.now() <= timedelta(
        seconds=3
    )
    clock.advance(timedelta(seconds=3))
    assert (await app.tick())["outbox_retried"] == 1
    [row] = await rows(app)
    assert row.attempts == 2 and timedelta(seconds=2) <= row.due_at - clock.now() <= timedelta(
        seconds=6
    )
    clock.advance(timedelta(seconds=6))
    assert (await app.tick())["outbox_sent"] == 1
    telegram.scripted = [(500, "Internal Server Error", None)] * 10
    await app.staff.record_sale(Staff(1, "Ольга"), 1, 100000)
    clock.advance(timedelta(hours=3))
    for _ in range(8):
        await app.tick()
        clock.advance(timedelta(minutes=10))  # past the longest backoff here, still in the day
    last = (await rows(app))[-1]
    assert (last.state, last.attempts) == ("failed", 8) and (last.last_error or "").startswith(
        "gave up"
    )


async def test_restart_after_a_crash_sends_each_once(
    telegram: TelegramServer, database_url: str, clock: FixedClock, quiet_business: Path
) -> None:
    first = await App.create(
        make_settings(telegram, database_url, business_file=quiet_business), clock=clock
    )
    for tg in range(1, 6):
        await customer(first, tg, phone=f"+7916123450{tg}")
        await first.staff.record_sale(Staff(1, "Ольга"), tg, 100000)
    clock.advance(timedelta(hours=3))
    dying = await first.sender._claim(Tally())  # claimed and rendered, then kill -9 before any call
    assert len(dying) == 5
    await first.close()

    second = await App.create(
        make_settings(telegram, database_url, business_file=quiet_business), clock=clock
    )
    assert (await second.tick())["outbox_sent"] == 0  # their claim is still fresh
    clock.advance(timedelta(seconds=61))  # the dead sender's lease runs out
    assert (await second.tick())["outbox_sent"] == 5
    assert (await second.tick())["outbox_sent"] == 0
    await second.close()
    texts = {c.chat_id: c.text for c in telegram.calls if c.method == "sendMessage" and c.result}
    assert sorted(chat or 0 for chat in texts) == [1, 2, 3, 4, 5]
    assert [r.text for r in dying] == [texts[r.chat_id] for r in dying], (
        "the same message, coupon and all"
    )
    assert len([c for c in telegram.calls if c.method == "sendMessage"]) == 5


async def test_the_running_bot_sends_on_its_own(carebot, telegram: TelegramServer) -> None:
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT)
    anna = telegram.user(7)
    await onboard(anna)
    await olga.send("/sale 4567 1500")
    await olga.reply()
    await anna.quiet()  # not before the delay
    carebot.clock.advance(timedelta(hours=3))
    # The background sender wakes up by itself: the survey (a service message goes before
    # marketing), then the thank-you offer.
    first, second = await anna.reply(timeout=15), await anna.reply(timeout=15)
    assert first.template == "survey_question" and first.text.startswith("Анна,")
    assert second.template == "thanks_offer" and second.text.startswith("Анна,")


async def due_service_rows(app: App, clock: FixedClock, count: int) -> None:
    """`count` service messages due now, to chats 10000, 10001, ..."""
    now = clock.now()
    async with app.db.transaction() as repos:
        for n in range(count):
            repos.session.add(
                OutboxMessage(
                    key=f"test:{n}",
                    chat_id=10_000 + n,
                    kind="service",
                    template="forget_cancelled",
                    data={},
                    not_before=now,
                    not_after=now + timedelta(hours=1),
                    due_at=now,
                    state="pending",
                    attempts=0,
                    created_at=now,
                )
            )


async def test_two_senders_at_once_send_nothing_twice(
    app: App, telegram: TelegramServer, clock: FixedClock, business: Business
) -> None:
    await due_service_rows(app, clock, 120)
    fast = business.model_copy(
        update={"outbox": business.outbox.model_copy(update={"messages_per_second": 500})}
    )
    senders = [
        OutboxSender(app.db, app.sender.transport, clock, fast, MOSCOW, app.render, batch=20)
        for _ in range(3)
    ]
    tallies = await asyncio.gather(*(s.drain() for s in senders))
    assert sum(t.sent for t in tallies) == 120
    per_chat = Counter(c.chat_id for c in telegram.calls if c.method == "sendMessage")
    assert len(per_chat) == 120 and set(per_chat.values()) == {1}
    assert {r.state for r in await rows(app)} == {"sent"}


async def test_carebot_tick_and_outbox_commands(
    telegram: TelegramServer, tmp_path: Path, clock: FixedClock
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/tick.sqlite3"
    app = await App.create(make_settings(telegram, database_url), clock=clock)
    clock.set(msk("2027-03-01T12:00"))
    await customer(app, 7, birthday=Birthday(14, 3))
    await app.close()
    env = carebot_env(telegram, database_url)
    tick = await asyncio.to_thread(
        carebot_cli, ["tick", "--now", "2027-03-14T10:30+03:00"], env, tmp_path
    )
    assert tick.returncode == 0, tick.stderr
    assert "birthdays=1" in tick.stdout and "outbox_sent=1" in tick.stdout
    assert len(sent_to(telegram, 7)) == 1
    again = await asyncio.to_thread(
        carebot_cli, ["tick", "--now", "2027-03-14T11:00+03:00"], env, tmp_path
    )
    assert "outbox_sent=0" in again.stdout and len(sent_to(telegram, 7)) == 1
    listing = await asyncio.to_thread(carebot_cli, ["outbox"], env, tmp_path)
    assert re.search(r"marketing\s+sent\s+1", listing.stdout), listing.stdout
    bad = await asyncio.to_thread(carebot_cli, ["tick", "--now", "tomorrow"], env, tmp_path)
    assert (
        bad.returncode == 2
        and "is not an ISO-8601 moment" in bad.stderr
        and "Traceback" not in bad.stderr
    )


async def test_your_birthday_is_coming(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    business = tmp_path / "business.toml"
    business.write_text(
        BUSINESS_FILE.read_text()
        .replace("remind_days_before = 0", "remind_days_before = 3")
        .replace("enabled = true", "enabled = false")
    )
    app = await App.create(
        make_settings(telegram, database_url, business_file=business), clock=clock
    )
    Renderings(telegram.templates).wrap(app.render)
    try:
        clock.set(msk("2027-03-01T12:00"))
        await customer(app, 7, birthday=Birthday(14, 3))
        await app.staff.record_sale(Staff(1, "Ольга"), 1, 200000, "manicure", "anna")
        clock.set(msk("2027-03-11T11:00"))
        result = await app.tick()
        assert result["birthdays"] == 1 and result["outbox_sent"] == 1
        assert result["outbox_expired"] == 1  # the thank-you of the 1st is ten days too late by now
        soon = sent_calls(telegram, 7)[-1]
        assert soon.template == "birthday_soon" and soon.text.startswith("Анна,")
        assert "маникюр с покрытием" in soon.text  # her last service
        assert (await app.tick())["birthdays"] == 0
    finally:
        await app.close()


async def test_the_sender_claims_the_next_batch_before_the_last_is_out(
    app: App, telegram: TelegramServer, clock: FixedClock, business: Business
) -> None:
    """Claiming and rendering while the pacer still has work keeps the rate (bench/broadcast.py).
    A batch takes the pacer half a second (20 a second), far longer than claiming the next one
    should even on a busy machine (at 100 a second a loaded test machine sent all ten first)."""
    await due_service_rows(app, clock, 40)
    fast = business.model_copy(
        update={"outbox": business.outbox.model_copy(update={"messages_per_second": 20})}
    )
    sender = OutboxSender(app.db, app.sender.transport, clock, fast, MOSCOW, app.render, batch=10)
    delivered_at_claim: list[int] = []
    claim = sender._claim

    async def counting_claim(tally: Tally) -> list:
        delivered_at_claim.append(len([c for c in telegram.calls if c.method == "sendMessage"]))
        return await claim(tally)

    sender._claim = counting_claim  # type: ignore[method-assign]
    assert (await sender.drain()).sent == 40
    assert delivered_at_claim[0] == 0 and 0 < delivered_at_claim[1] < 10, delivered_at_claim
    assert Counter(c.chat_id for c in telegram.calls if c.method == "sendMessage") == Counter(
        range(10_000, 10_040)
    )


async def test_a_claim_that_fails_to_commit_leaves_no_lane_busy(
    app: App, telegram: TelegramServer, clock: FixedClock, business: Business
) -> None:
    """A laned row (a customer's relays go in order) whose claim was never committed is still
    pending, so its lane must not stay marked as in flight: that would stop the lane for good."""
    await due_service_rows(app, clock, 1)
    sender = OutboxSender(app.db, app.sender.transport, clock, business, MOSCOW, app.render)
    sender.laned.add("forget_cancelled")
    real = app.db

    class CommitFails:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        @asynccontextmanager
        async def transaction(self, *, urgent: bool = False) -> AsyncIterator[object]:
            async with real.transaction(urgent=urgent) as repos:
                yield repos
                raise ConnectionError("the connection was lost at the commit")

    sender.db = CommitFails()  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        await sender._claim(Tally())
    assert not sender._busy_lanes and not sender._busy_groups
    sender.db = real
    assert [item.lane for item in await sender._claim(Tally())] == ["test:"]
