"""The shared Telegram budget's Lua script against a real Redis, on virtual time (the script takes
`now` from its caller in tests, from Redis's clock in production): several "instances" (budgets
with their own connections) together keep the global rate, a chat's gap, a group's minute and a
shared retry_after. Skipped when no Redis answers on 127.0.0.1:6379."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.outbox.limits import Limiter, Priority
from bot.outbox.shared_budget import HOLD, PAID, WINDOW, SharedBudget

REDIS_URL = "redis://127.0.0.1:6379/14"  # db 14: the conversation-state tests use 15
T0 = 1_000_000.0
BULK, RELAY, INTERACTIVE = int(Priority.BULK), int(Priority.RELAY), int(Priority.INTERACTIVE)
LIMITS: dict[str, Any] = dict(
    per_second=29, per_chat_seconds=1.0, private_burst=10, group_per_minute=20, group_reserve=4
)


@pytest.fixture
async def budgets() -> AsyncIterator[list[SharedBudget]]:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    prefix = f"carebot:test:{uuid.uuid4().hex}"
    made = [SharedBudget(Redis.from_url(REDIS_URL), prefix) for _ in range(3)]
    try:
        await made[0].ping()
    except (RedisError, OSError):
        for budget in made:
            await budget.close()
        pytest.skip("no Redis on 127.0.0.1:6379")
    yield made
    keys = [key async for key in made[0].redis.scan_iter(f"{prefix}:*")]
    if keys:
        await made[0].redis.delete(*keys)
    for budget in made:
        await budget.close()


async def _drive(
    budgets: list[SharedBudget], chats: list[int], kind: int, lane: str = "free", **limits: Any
) -> list[float]:
    """Every chat's message asked for by the instances in turn on virtual time, each asking again
    when told to wait, then leaving at its slot (again when told to wait), as `take` does; the
    moments they left."""
    options = {**LIMITS, **limits}
    departures: list[float] = []
    now = T0
    for i, chat in enumerate(chats):
        budget = budgets[i % len(budgets)]
        member = budget.member()
        while True:
            delay, granted = await budget.try_take(
                chat, kind, lane=lane, now=now, member=member, **options
            )
            if granted:
                break
            now += max(delay, 0.001)
        leave = now + delay
        while wait := await budget.depart(
            chat, options["per_second"], member, lane=lane, now=leave, kind=kind
        ):
            leave += wait
        await budget.landed(chat, member, lane=lane, now=leave)  # an answer at once
        departures.append(leave)
    return departures


def _most_in_a_second(moments: list[float], window: float = 1.0) -> int:
    moments = sorted(moments)
    most, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_three_instances_together_keep_the_global_rate(
    budgets: list[SharedBudget],
) -> None:
    departures = await _drive(budgets, list(range(1, 121)), BULK)
    assert len(departures) == 120
    assert _most_in_a_second(departures) <= 29
    # and the instances are not slowed to a third each: 120 messages take about 120/29 s
    assert max(departures) - T0 < 120 / 29 + 0.5


async def test_a_private_chat_gets_one_bulk_message_a_second_whoever_sends(
    budgets: list[SharedBudget],
) -> None:
    departures = await _drive(budgets, [42] * 6, BULK)
    gaps = [b - a for a, b in zip(departures, departures[1:], strict=False)]
    assert all(gap >= 1.0 - 1e-6 for gap in gaps), gaps


async def test_answers_to_one_person_may_burst_but_not_past_the_burst(
    budgets: list[SharedBudget],
) -> None:
    departures = await _drive(budgets, [7] * 12, INTERACTIVE)
    assert departures[9] - departures[0] < 0.01  # ten answers at once
    assert departures[10] - departures[0] >= 10.0 - 1e-6  # the eleventh waits out the burst


async def test_a_group_gets_its_twenty_a_minute_across_instances(
    budgets: list[SharedBudget],
) -> None:
    relays = await _drive(budgets, [-100] * 17, RELAY)
    # relays leave 4 of the 20 to staff answers: the 17th waits for the first to leave the minute
    assert _most_in_a_second(relays[:16], 60.0) == 16
    assert relays[16] - relays[0] >= 60.0 - 1e-6
    # an answer still gets in at once (16 + 1 ≤ 20)
    delay, granted = await budgets[2].try_take(-100, INTERACTIVE, now=T0 + 1, **LIMITS)
    assert granted and delay == 0


async def test_a_retry_after_told_to_one_instance_holds_for_every_instance(
    budgets: list[SharedBudget],
) -> None:
    await budgets[0].pause(55, 7, now=T0)
    delay, granted = await budgets[1].try_take(55, BULK, now=T0 + 1, **LIMITS)
    assert not granted and delay == pytest.approx(6.0, abs=0.01)
    assert await budgets[2].paused_for(55, now=T0 + 2) == pytest.approx(5.0, abs=0.01)
    # another chat goes on
    delay, granted = await budgets[1].try_take(56, BULK, now=T0 + 1, **LIMITS)
    assert granted
    # a pause of the whole bot (no chat named) holds every chat
    await budgets[0].pause(None, 3, now=T0 + 10)
    delay, granted = await budgets[2].try_take(57, INTERACTIVE, now=T0 + 11, **LIMITS)
    assert not granted and delay == pytest.approx(2.0, abs=0.01)


async def test_the_paid_lane_goes_at_its_own_rate_and_leaves_the_free_one_alone(
    budgets: list[SharedBudget],
) -> None:
    paid = await _drive(budgets, list(range(1000, 4000)), BULK, lane=PAID, per_second=1000)
    assert _most_in_a_second(paid) <= 1000
    assert max(paid) - T0 < 3.5  # 3,000 in about 3 s, not 100 s
    # the free lane is untouched by them: an answer goes at once
    delay, granted = await budgets[0].try_take(1, INTERACTIVE, now=T0 + 0.5, **LIMITS)
    assert granted and delay == 0


async def test_answers_and_bulk_share_the_second(budgets: list[SharedBudget]) -> None:
    bulk = await _drive(budgets, list(range(1, 59)), BULK)
    answers = []
    for i in range(20):  # answers asked for meanwhile, each at its own moment
        now = T0 + i * 0.1
        member = budgets[i % 3].member()
        while True:
            delay, granted = await budgets[i % 3].try_take(
                10_000 + i, INTERACTIVE, now=now, member=member, **LIMITS
            )
            if granted:
                break
            now += delay
        while wait := await budgets[i % 3].depart(
            10_000 + i, 29, member, now=now, kind=INTERACTIVE
        ):
            now += wait
        answers.append(now)
    assert _most_in_a_second(bulk + answers) <= 29


async def test_the_limiter_takes_its_turns_from_the_shared_budget(
    budgets: list[SharedBudget],
) -> None:
    """The limiter is one object with named limits; with `shared` its turns come from Redis."""
    limiter = Limiter(29, shared=budgets[0])
    assert limiter.limits()["messages_per_second"] == 29
    await limiter.wait_turn(5, Priority.BULK)
    limiter.pause(5, 30)
    for task in list(limiter._pausing):
        await task
    assert await budgets[1].paused_for(5) > 25  # another instance sees the pause at once


async def test_departures_late_from_their_slots_still_keep_the_second(
    budgets: list[SharedBudget],
) -> None:
    """Turns given for evenly spaced slots, but the processes woke late and all leave at once:
    the departures themselves are counted too, and the one past the rate waits."""
    members = [budgets[i % 3].member() for i in range(4)]
    for i, member in enumerate(members[:3]):
        delay, granted = await budgets[i].try_take(
            100 + i, BULK, now=T0 + i * 0.4, member=member, **{**LIMITS, "per_second": 3}
        )
        assert granted
    late = T0 + 2.0  # everyone woke at once, 2 s late
    assert [await budgets[i].depart(100 + i, 3, members[i], now=late) for i in range(3)] == [0] * 3
    for i in range(3):
        await budgets[i].landed(100 + i, members[i], now=late)
    delay, granted = await budgets[0].try_take(
        103, BULK, now=late, member=members[3], **{**LIMITS, "per_second": 3}
    )
    assert granted
    assert await budgets[0].depart(103, 3, members[3], now=late + delay) == pytest.approx(
        WINDOW - delay, abs=0.002
    )


async def test_a_message_that_left_late_still_keeps_the_chat_gap(
    budgets: list[SharedBudget],
) -> None:
    """Instance A's turn for a chat was given for T0 but it left only at T0 + 0.9 (it waited for
    room in the second); B's turn for the same chat, given for T0 + 1.1, waits until A's message
    is a gap old."""
    a, b = budgets[0].member(), budgets[1].member()
    assert (await budgets[0].try_take(9, BULK, now=T0, member=a, **LIMITS))[1]
    delay, granted = await budgets[1].try_take(9, BULK, now=T0 + 1.1, member=b, **LIMITS)
    assert granted and delay == 0
    assert await budgets[0].depart(9, 29, a, now=T0 + 0.9, gap=1.0) == 0
    wait = await budgets[1].depart(9, 29, b, now=T0 + 1.1, gap=1.0)
    assert wait == pytest.approx(0.9, abs=0.01)  # until T0 + 0.9 + 1.1
    assert await budgets[1].depart(9, 29, b, now=T0 + 2.01, gap=1.0) == 0


async def test_an_answer_is_not_queued_behind_a_broadcast(budgets: list[SharedBudget]) -> None:
    """Three instances reserved the next second for a broadcast; a person's answer asked for
    meanwhile goes at once, and the broadcast's departures leave it room."""
    for i in range(29):
        assert (await budgets[i % 3].try_take(20_000 + i, BULK, now=T0, **LIMITS))[1]
    member = budgets[1].member()
    delay, granted = await budgets[1].try_take(
        77, INTERACTIVE, now=T0 + 0.5, member=member, **LIMITS
    )
    assert granted and delay == 0
    assert await budgets[1].depart(77, 29, member, now=T0 + 0.5, kind=INTERACTIVE) == 0
    # while the person waits, bulk leaves 2 of the second's 29 to answers, as far as answers
    # have not used them: the one that left used one, so 27 bulk departures fill 28 and the 28th
    # waits (the last free place stays an answer's)
    gone = [
        await budgets[0].depart(30_000 + i, 29, budgets[0].member(), now=T0 + 0.6 + i * 0.01)
        for i in range(28)
    ]
    assert gone[:27] == [0] * 27 and gone[27] > 0
    # and the next answer takes it at once
    member = budgets[2].member()
    assert (await budgets[2].try_take(78, INTERACTIVE, now=T0 + 0.9, member=member, **LIMITS))[1]
    assert await budgets[2].depart(78, 29, member, now=T0 + 0.9, kind=INTERACTIVE) == 0


async def test_a_message_counts_from_when_its_answer_came(budgets: list[SharedBudget]) -> None:
    """A message left at T0 but its answer came at T0 + 0.5 (a slow connection): Telegram counted
    it by then, so the second it fills ends at T0 + 0.5 + WINDOW, not T0 + WINDOW; and until its
    answer came it counted as just sent, however long that took."""
    one = {**LIMITS, "per_second": 1}
    first, second = budgets[0].member(), budgets[1].member()
    assert (await budgets[0].try_take(1, BULK, now=T0, member=first, **one))[1]
    assert await budgets[0].depart(1, 1, first, now=T0) == 0
    assert await budgets[1].depart(2, 1, second, now=T0 + 1.2) > 0  # still on its way
    await budgets[0].landed(1, first, now=T0 + 0.5)
    assert await budgets[1].depart(2, 1, second, now=T0 + 1.2) == pytest.approx(
        0.5 + WINDOW - 1.2, abs=0.002
    )


async def test_a_message_whose_answer_never_came_stops_counting_after_the_hold(
    budgets: list[SharedBudget],
) -> None:
    """The process that sent it died before the answer: the message holds its place in the
    second for HOLD (plus the second), not forever."""
    first, second = budgets[0].member(), budgets[1].member()
    assert await budgets[0].depart(1, 1, first, now=T0) == 0
    assert await budgets[1].depart(2, 1, second, now=T0 + HOLD) > 0
    assert await budgets[1].depart(2, 1, second, now=T0 + HOLD + WINDOW + 0.001) == 0


async def test_a_person_waiting_leaves_the_paid_lane_its_whole_rate(
    budgets: list[SharedBudget],
) -> None:
    """Answers go on the free lane: while a person waits for one, a paid broadcast still goes at
    its 1,000 a second (leaving them a tenth of it would only slow the broadcast)."""
    member = budgets[0].member()
    assert (await budgets[0].try_take(5, INTERACTIVE, now=T0, member=member, **LIMITS))[1]
    assert await budgets[0].depart(5, 29, member, now=T0, kind=INTERACTIVE) == 0
    paid = await _drive(budgets, list(range(1000, 3000)), BULK, lane=PAID, per_second=1000)
    assert _most_in_a_second(paid) <= 1000
    assert max(paid) - T0 < 2.1  # 2,000 in 2 s; 900 a second would take 2.2


async def test_every_item_of_an_album_counts_from_when_its_answer_came(
    budgets: list[SharedBudget],
) -> None:
    """An album of three into a group takes three turns; once the call came back, all three
    count from then, not only the last (the others would hold their places for HOLD)."""
    limiter = Limiter(29, shared=budgets[0])
    await limiter.wait_turns(-100, 3, Priority.RELAY)
    gone = f"{budgets[0].prefix}:gone:free"
    seconds, micros = await budgets[0].redis.time()
    now = seconds + micros / 1_000_000
    assert all(at > now for _, at in await budgets[0].redis.zrange(gone, 0, -1, withscores=True))
    await limiter.landed()
    stamps = await budgets[0].redis.zrange(gone, 0, -1, withscores=True)
    assert len(stamps) == 3 and all(at <= now + 1 for _, at in stamps)


async def test_a_turn_given_back_frees_its_place_at_once(budgets: list[SharedBudget]) -> None:
    """A broadcast cancelled after its message's turn came: the place is free again for every
    instance, not held as if the message were on its way."""
    one = {**LIMITS, "per_second": 1}
    member = budgets[0].member()
    assert (await budgets[0].try_take(1, BULK, now=T0, member=member, **one))[1]
    assert await budgets[0].depart(1, 1, member, now=T0) == 0
    assert await budgets[1].depart(2, 1, budgets[1].member(), now=T0 + 0.1) > 0
    await budgets[0].release(1, member)
    assert await budgets[1].depart(2, 1, budgets[1].member(), now=T0 + 0.1) == 0
    # and the chat's gap with it: nothing went there
    assert (await budgets[2].try_take(1, BULK, now=T0 + 0.2, **one))[1]


async def test_a_broadcast_is_spaced_by_its_round_trip_and_the_second(
    budgets: list[SharedBudget],
) -> None:
    """Answers take 0.2 s to come back: each message holds its place for 1.2 s, so 29 go in
    each 1.2 s, and the slots are given out that far apart (no pile of waiters at departure)."""
    now = T0
    for i in range(10):  # the round trip is learnt from the answers
        member = budgets[0].member()
        assert await budgets[0].depart(100 + i, 29, member, now=now) == 0
        await budgets[0].landed(100 + i, member, now=now + 0.2)
        now += 0.05
    slots = []
    for i in range(5):
        delay, granted = await budgets[1].try_take(200 + i, BULK, now=now, **LIMITS)
        assert granted
        slots.append(now + delay)
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert all(gap == pytest.approx((WINDOW + 0.2) / 29, abs=0.002) for gap in gaps), gaps


async def test_a_groups_minute_lives_from_its_last_arrival(budgets: list[SharedBudget]) -> None:
    """A relay into a group arrived late (a slow upload): the group's key lives a minute from
    that arrival, not from when the turn was taken."""
    member = budgets[0].member()
    assert (await budgets[0].try_take(-100, RELAY, now=T0, member=member, **LIMITS))[1]
    assert await budgets[0].depart(-100, 29, member, now=T0, kind=RELAY) == 0
    key = f"{budgets[0].prefix}:chat:-100"
    await budgets[0].redis.pexpire(key, 5_000)  # (as if 56 s of the turn's minute had passed)
    await budgets[0].landed(-100, member, now=T0 + 56)
    assert await budgets[0].redis.pttl(key) > 59_000


async def test_answers_waiting_take_the_places_as_they_free_before_bulk(
    budgets: list[SharedBudget],
) -> None:
    """The second is full of a broadcast when people ask (fifty customers at once): while their
    answers wait, each place that frees is an answer's, not the broadcast's."""
    for i in range(29):
        member = budgets[i % 3].member()
        assert await budgets[i % 3].depart(1_000 + i, 29, member, now=T0 + i * 0.01) == 0
        await budgets[i % 3].landed(1_000 + i, member, now=T0 + i * 0.01)
    waiting = []
    for n in range(3):
        member = budgets[n].member()
        assert (
            await budgets[n].try_take(70 + n, INTERACTIVE, now=T0 + 0.5, member=member, **LIMITS)
        )[1]
        assert await budgets[n].depart(70 + n, 29, member, now=T0 + 0.5, kind=INTERACTIVE) > 0
        waiting.append(member)
    freed = T0 + 0.02 + WINDOW + 0.001  # three departures have left the second: 26 in it
    assert await budgets[0].depart(70, 29, waiting[0], now=freed, kind=INTERACTIVE) == 0
    # 27 now: two answers still wait, so the broadcast keeps out of the last two places
    assert await budgets[0].depart(2_000, 29, budgets[0].member(), now=freed) > 0
    for n, member in list(enumerate(waiting))[1:]:
        assert await budgets[n].depart(70 + n, 29, member, now=freed, kind=INTERACTIVE) == 0
