"""An album in a group (`Limiter.wait_turns`, `Limiter.arrived`): each item takes a turn of the
group's 20 a minute, all items count from when the last turn came, and from when the album
arrived once it is in, so the window never lets the next message go before Telegram's does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.outbox.limits import Limiter, Priority
from tests.unit.test_outbox_policy import fake_time

GROUP = -100


def limiter_on(clock: list[float], sleep: Callable[[float], Awaitable[None]]) -> Limiter:
    return Limiter(
        per_second=30,
        per_chat_seconds=1.0,
        group_per_minute=20,
        timer=lambda: clock[0],
        sleep=sleep,
    )


async def test_an_album_waits_until_all_its_items_fit() -> None:
    clock, sleep = fake_time()
    limiter = limiter_on(clock, sleep)
    for _ in range(17):
        await limiter.wait_turn(GROUP, Priority.INTERACTIVE)
    first = limiter._chats[GROUP].sent[0]
    departed = await limiter.wait_turns(GROUP, 5, Priority.INTERACTIVE)  # 17 + 5 > 20
    assert departed >= first + 60.0  # two of the earlier messages had to leave the minute
    sent = limiter._chats[GROUP].sent
    assert sent.count(departed) == 5  # all five count from when the last turn came
    assert len([t for t in sent if t > departed - 60]) <= 20


async def test_an_album_counts_from_its_arrival() -> None:
    clock, sleep = fake_time()
    limiter = limiter_on(clock, sleep)
    departed = await limiter.wait_turns(GROUP, 3, Priority.INTERACTIVE)
    clock[0] += 2.5  # the upload took a while
    limiter.arrived(GROUP, departed, 3)
    sent = limiter._chats[GROUP].sent
    assert sent.count(clock[0]) == 3 and departed not in sent
    for _ in range(17):
        await limiter.wait_turn(GROUP, Priority.INTERACTIVE)
    before = clock[0]
    await limiter.wait_turn(GROUP, Priority.INTERACTIVE)  # the 21st: waits for the album's minute
    assert clock[0] >= departed + 2.5 + 60.0 > before
