"""Pacing for the sender: a global rate and a minimum gap per chat.

Hand-written because it is a few lines that must honour Telegram's `retry_after` by pausing
everything: the rate-limit libraries on PyPI (aiolimiter and friends) have no "pause all
until" and count in windows that let a burst through at the window's edge, which is exactly
what earns a 429.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable


class Pacer:
    def __init__(self, per_second: float, per_chat_seconds: float,
                 timer: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.gap = 1.0 / per_second
        self.per_chat = per_chat_seconds
        self._timer = timer
        self._sleep = sleep
        self._next_slot = 0.0
        self._chat_next: dict[int, float] = {}
        self._lock = asyncio.Lock()
        self._departures = asyncio.Lock()
        self._last_departure = float("-inf")
        self._second: deque[float] = deque(maxlen=max(1, int(per_second)))  # the latest departures

    def now(self) -> float:
        return self._timer() if self._timer else asyncio.get_running_loop().time()

    async def wait_turn(self, chat_id: int) -> None:
        """Wait until one more message may go, globally and to this chat; take that slot."""
        async with self._lock:
            now = self.now()
            slot = max(now, self._next_slot, self._chat_next.get(chat_id, 0.0))
            self._next_slot = slot + self.gap
            self._chat_next[chat_id] = slot + self.per_chat
            if len(self._chat_next) > 100_000:  # forget chats long past their gap
                self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        if slot > now:
            await self._sleep(slot - now)
        # A busy machine may wake several waiters late and at once; space the real departures
        # as well, so a stall of the event loop never turns into a burst (and a 429).
        # The spacing counts from when the last one was due to leave, not from when it did: a
        # sleep wakes a millisecond or so late, and counting from the wake-up would lose that
        # on every message (about 3% of the rate at 29/s). After a stall it counts from now.
        # And never more than `per_second` in any one second, the way Telegram counts: the
        # spacing alone lets one more through when a late message is followed by an on-time one.
        async with self._departures:
            due = self._last_departure + self.gap
            if len(self._second) == self._second.maxlen:
                due = max(due, self._second[0] + 1.0)
            wait = due - self.now()
            if wait > 0:
                await self._sleep(wait)
            self._last_departure = max(due, self.now() - self.gap / 2)
            self._second.append(self.now())

    def pause(self, seconds: float) -> None:
        """Telegram said "retry after": nothing goes out before then."""
        self._next_slot = max(self._next_slot, self.now() + seconds)
