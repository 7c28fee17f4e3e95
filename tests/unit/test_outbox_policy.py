"""The outbox policy and the limiter, with fixed clocks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.business import Marketing
from bot.db.models import Customer
from bot.outbox.limits import Limiter, Priority
from bot.outbox.policy import Decision, Policy

MOSCOW = ZoneInfo("Europe/Moscow")
POLICY = Policy(Marketing(), MOSCOW)


def at(text: str) -> datetime:
    """A Moscow wall-clock moment."""
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW)


def customer(**fields: object) -> Customer:
    values: dict[str, object] = dict(
        id=1, tg_user_id=7, marketing_opt_out=False, erased_at=None, blocked_at=None
    )
    values.update(fields)
    return Customer(**values)


FAR = at("2027-01-01T00:00")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-11-23T21:00", "2026-11-24T10:00"),
        ("2026-11-23T23:59", "2026-11-24T10:00"),
        ("2026-11-24T03:00", "2026-11-24T10:00"),
        ("2026-11-24T09:59", "2026-11-24T10:00"),
        ("2026-11-24T10:00", None),
        ("2026-11-24T20:59", None),
    ],
)
def test_quiet_hours_in_the_business_time_zone(now: str, until: str | None) -> None:
    verdict = POLICY.judge(kind="marketing", now=at(now), not_after=FAR, customer=customer())
    if until is None:
        assert verdict.decision is Decision.SEND
    else:
        assert (verdict.decision, verdict.until, verdict.reason) == (
            Decision.DEFER,
            at(until),
            "quiet_hours",
        )


def test_quiet_hours_are_local_whatever_utc_says() -> None:
    moment = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)  # 21:30 in Moscow
    assert (
        POLICY.judge(kind="marketing", now=moment, not_after=FAR, customer=customer()).decision
        is Decision.DEFER
    )


def test_service_messages_ignore_quiet_hours_and_caps() -> None:
    night = at("2026-11-23T23:30")
    recent = [night - timedelta(days=1), night - timedelta(days=2), night - timedelta(days=3)]
    verdict = POLICY.judge(
        kind="service",
        now=night,
        not_after=FAR,
        customer=customer(marketing_opt_out=True),
        recent_marketing=recent,
    )
    assert verdict.decision is Decision.SEND


def test_weekly_cap_waits_for_the_oldest_to_leave_the_week() -> None:
    now = at("2026-11-23T12:00")
    recent = [at("2026-11-18T12:30"), at("2026-11-20T11:00")]
    verdict = POLICY.judge(
        kind="marketing", now=now, not_after=FAR, customer=customer(), recent_marketing=recent
    )
    assert (verdict.decision, verdict.until, verdict.reason) == (
        Decision.DEFER,
        at("2026-11-25T12:30"),
        "weekly_cap",
    )
    one = POLICY.judge(
        kind="marketing", now=now, not_after=FAR, customer=customer(), recent_marketing=recent[:1]
    )
    assert one.decision is Decision.SEND


def test_cap_landing_at_night_waits_for_the_morning() -> None:
    recent = [at("2026-11-18T22:30"), at("2026-11-20T11:00")]
    verdict = POLICY.judge(
        kind="marketing",
        now=at("2026-11-23T12:00"),
        not_after=FAR,
        customer=customer(),
        recent_marketing=recent,
    )
    assert verdict.until == at("2026-11-26T10:00")


@pytest.mark.parametrize(
    ("fields", "kind", "reason"),
    [
        ({"marketing_opt_out": True}, "marketing", "opted_out"),
        ({"erased_at": at("2026-11-01T00:00"), "tg_user_id": None}, "service", "erased"),
        ({"blocked_at": at("2026-11-01T00:00")}, "service", "blocked"),
    ],
)
def test_who_never_gets_it(fields: dict[str, object], kind: str, reason: str) -> None:
    verdict = POLICY.judge(
        kind=kind, now=at("2026-11-23T12:00"), not_after=FAR, customer=customer(**fields)
    )
    assert (verdict.decision, verdict.reason) == (Decision.SKIP, reason)


def test_too_late_is_dropped_not_sent() -> None:
    verdict = POLICY.judge(
        kind="service",
        now=at("2026-11-23T12:00"),
        not_after=at("2026-11-23T11:59"),
        customer=customer(),
    )
    assert (verdict.decision, verdict.reason) == (Decision.EXPIRE, "late")
    # a greeting that would have to wait past its last moment is dropped as well
    night = POLICY.judge(
        kind="marketing",
        now=at("2026-11-23T22:00"),
        not_after=at("2026-11-24T00:00"),
        customer=customer(),
    )
    assert (night.decision, night.reason) == (Decision.EXPIRE, "quiet_hours")


async def test_limiter_spaces_messages_and_chats_and_pauses() -> None:
    clock = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock[0] += seconds

    limiter = Limiter(per_second=10, per_chat_seconds=1.0, timer=lambda: clock[0], sleep=sleep)
    await limiter.wait_turn(1)
    await limiter.wait_turn(2)
    await limiter.wait_turn(3)
    assert slept == [0.1, 0.1]  # ten a second: a tenth apart
    await limiter.wait_turn(1)  # the same chat again: a second after its last message
    assert round(clock[0], 6) == 1.0
    limiter.pause(4, 5)  # Telegram said "retry after 5" for chat 4: only chat 4 waits
    await limiter.wait_turn(5)
    assert round(clock[0], 6) == 1.1
    await limiter.wait_turn(4)
    assert round(clock[0], 6) == 6.0


async def test_limiter_does_not_burst_after_a_stall() -> None:
    """Three waiters whose slots passed while the loop was busy still leave a gap apart."""
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = Limiter(per_second=10, per_chat_seconds=0, timer=lambda: clock[0], sleep=sleep)
    for chat in range(3):
        await limiter.wait_turn(chat)
    clock[0] = 5.0  # the loop stalled; slots 0.1 and 0.2 are long past
    departures = []
    for chat in range(3, 6):
        await limiter.wait_turn(chat)
        departures.append(round(clock[0], 6))
    assert departures == [5.0, 5.1, 5.2]


async def test_limiter_keeps_its_rate_when_sleeps_wake_late() -> None:
    """Every sleep overshoots by 2 ms (a busy loop): 100 messages at 10/s still take ~9.9 s,
    and no two leave closer than half a gap."""
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds + 0.002

    limiter = Limiter(per_second=10, per_chat_seconds=0, timer=lambda: clock[0], sleep=sleep)
    departures = []
    for chat in range(100):
        await limiter.wait_turn(chat)
        departures.append(clock[0])
    assert departures[-1] - departures[0] < 99 * 0.1 + 0.05  # counting from wake-ups: 10.1 s
    assert min(b - a for a, b in zip(departures, departures[1:], strict=False)) >= 0.05


async def test_limiter_never_lets_more_than_the_rate_into_one_second() -> None:
    """Sleeps that wake late by anything up to 40 ms, at random: in no one-second window do
    more than ten of 300 messages leave, and the rate stays near ten a second."""
    import random

    clock = [0.0]
    jitter = random.Random(7)

    async def sleep(seconds: float) -> None:
        clock[0] += seconds + jitter.uniform(0, 0.04)

    limiter = Limiter(per_second=10, per_chat_seconds=0, timer=lambda: clock[0], sleep=sleep)
    departures = []
    for chat in range(300):
        await limiter.wait_turn(chat)
        departures.append(clock[0])
    busiest = max(sum(1 for t in departures if start <= t < start + 1.0) for start in departures)
    assert busiest <= 10
    assert departures[-1] - departures[0] < 299 * 0.1 * 1.05


def fake_time() -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += max(seconds, 0.0)

    return clock, sleep


async def test_a_group_gets_at_most_twenty_a_minute_and_answers_keep_their_reserve() -> None:
    """Relays into the staff group go at once up to five, then spread (one every 3 s), and stop
    at 16 a minute; an interactive answer (a staff member's /find) still finds room among the 20."""
    clock, sleep = fake_time()
    limiter = Limiter(
        per_second=30,
        per_chat_seconds=1.0,
        group_per_minute=20,
        group_reserve=4,
        timer=lambda: clock[0],
        sleep=sleep,
    )
    group = -100
    departures = []
    for _ in range(16):
        await limiter.wait_turn(group, Priority.RELAY)
        departures.append(round(clock[0], 3))
    assert departures[4] < 0.2  # the global spacing only
    gaps = [round(b - a, 3) for a, b in zip(departures[4:], departures[5:], strict=False)]
    assert gaps == [3.0] * 11
    before = clock[0]
    await limiter.wait_turn(group, Priority.INTERACTIVE)  # the reserve: at once
    assert clock[0] - before < 0.1
    await limiter.wait_turn(group, Priority.RELAY)  # the 17th relay waits for the window
    assert 60.0 <= clock[0] - departures[0] < 60.1
    times = [t for t in limiter._chats[group].sent if t > clock[0] - 60]
    assert len(times) <= 20


async def test_a_private_chat_allows_a_short_burst_of_answers_then_one_a_second() -> None:
    clock, sleep = fake_time()
    limiter = Limiter(per_second=30, per_chat_seconds=1.0, timer=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        await limiter.wait_turn(7, Priority.INTERACTIVE)
    assert clock[0] < 0.4  # the steps of a conversation go at once
    await limiter.wait_turn(7, Priority.INTERACTIVE)
    assert round(clock[0], 3) == 10.0  # and on average no more than one a second


async def test_bulk_yields_to_answers() -> None:
    """While answers are being given, the outbox leaves them a tenth of each second."""
    clock, sleep = fake_time()
    limiter = Limiter(per_second=10, per_chat_seconds=0, timer=lambda: clock[0], sleep=sleep)
    await limiter.wait_turn(1, Priority.INTERACTIVE)
    bulk = []
    for chat in range(100, 130):
        await limiter.wait_turn(chat, Priority.BULK)
        bulk.append(clock[0])
    # for two seconds after the answer, no second holds more than nine bulk messages
    busiest = max(
        sum(1 for t in bulk if start <= t < start + 1.0) for start in bulk if start + 1.0 <= 2.0
    )
    assert busiest <= 9
    assert len(bulk) == 30 and bulk[-1] < 3.5  # and the bulk still goes at about the rate


async def test_a_pause_is_per_chat() -> None:
    """A 429 from the staff group (retry after 30) holds back nothing sent to customers."""
    clock, sleep = fake_time()
    limiter = Limiter(per_second=30, per_chat_seconds=1.0, timer=lambda: clock[0], sleep=sleep)
    limiter.pause(-100, 30)
    for chat in range(1, 31):
        await limiter.wait_turn(chat, Priority.BULK)
    assert clock[0] < 1.5
    assert limiter.paused_for(-100) > 28
    await limiter.wait_turn(-100, Priority.RELAY)
    assert round(clock[0], 3) == 30.0


async def test_the_outcome_of_a_sent_message_is_written_before_the_next_claim() -> None:
    """SQLite's writers queue in the process; an urgent one (a message's outcome) jumps the queue,
    so a crash finds as few sent-but-unmarked rows as possible."""
    import asyncio

    from bot.db.repositories import WriterQueue

    queue = WriterQueue()
    order: list[str] = []
    await queue.acquire()

    async def writer(name: str, urgent: bool) -> None:
        await queue.acquire(urgent)
        order.append(name)
        queue.release()

    tasks = [
        asyncio.create_task(writer("claim 1", False)),
        asyncio.create_task(writer("claim 2", False)),
    ]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(writer("sent", True)))
    await asyncio.sleep(0)
    queue.release()
    await asyncio.gather(*tasks)
    assert order == ["sent", "claim 1", "claim 2"]
    assert not queue.locked()
