"""One Telegram budget for every instance of the bot: the limiter's turns taken in Redis.

Several processes sending for the same bot must together keep Telegram's limits: about 30
messages a second in all (up to 1,000 for paid broadcasts), one a second into a private chat,
20 a minute into a group, and a `retry_after` Telegram gave one of them holds for all. Each turn
is one call of one Lua script, which Redis runs atomically on its own clock (`TIME`), so two
instances can never both take the last place of a second.

The script either grants the turn, reserving the next free slot of the global rate (it may be a
little ahead: the caller sleeps until then, and the instances are served first come, first
served), or says how long to wait before asking again (the chat or the whole bot is paused, the
chat's gap is not over, the group's minute is full).

Keys (all under one prefix, per bot): `<p>:tat:<lane>` the next free global slot of the lane
("free" or "paid"), `<p>:win:<lane>` the departures of the last second, `<p>:chat:<id>` a chat's
recent departures, `<p>:pause` and `<p>:pause:<id>` a `retry_after`, `<p>:interactive` when an
answer last went (bulk leaves room for answers then).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import Any

log = logging.getLogger("carebot.budget")


def _now_from(argument: int) -> str:
    """The Lua that sets `now`: ARGV[argument] when a test gives one, else Redis's own clock (the
    one every instance shares). Each script below begins with it."""
    return f"""local now
if ARGV[{argument}] and ARGV[{argument}] ~= '' then now = tonumber(ARGV[{argument}]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""


# KEYS: 1 tat, 2 window, 3 chat, 4 global pause, 5 chat pause, 6 last interactive
# ARGV: 1 kind (0 interactive, 1 relay, 2 bulk), 2 gap (s), 3 per second, 4 chat kind
#       (0 private, 1 group), 5 per-chat gap (s), 6 private burst, 7 group per minute,
#       8 group reserve, 9 a unique member, 10 turns (an album's items), 11 now (tests only;
#       empty: Redis's own clock, the one every instance shares)
# Returns {delay_ms, granted}: granted 1 → the turn is the caller's after delay_ms;
# granted 0 → ask again after delay_ms.
TAKE = (
    _now_from(11)
    + """
local kind = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
local per_second = tonumber(ARGV[3])
local is_group = tonumber(ARGV[4]) == 1
local chat_gap = tonumber(ARGV[5])
local burst = tonumber(ARGV[6])
local group_cap = tonumber(ARGV[7])
local reserve = tonumber(ARGV[8])
local member = ARGV[9]
local turns = tonumber(ARGV[10])
local W = 1.05
-- a message may leave (and arrive) a little after its slot: a chat's gap keeps this much over
chat_gap = chat_gap + 0.1

-- a person waits for an answer: from now on bulk leaves room for it (here and at departure)
if kind == 0 then redis.call('SET', KEYS[6], tostring(now), 'PX', 5000) end
local wait = 0
local p = tonumber(redis.call('GET', KEYS[4]) or '0')
if p > now then wait = p - now end
p = tonumber(redis.call('GET', KEYS[5]) or '0')
if p - now > wait then wait = p - now end
if wait > 0 then return {math.ceil(wait * 1000), 0} end

-- the chat's own limits
if KEYS[3] ~= '' then
  if is_group then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60)
    local cap = group_cap
    if kind ~= 0 then cap = group_cap - reserve end
    local n = redis.call('ZCARD', KEYS[3])
    if n + turns > cap then
      local oldest = redis.call('ZRANGE', KEYS[3], n + turns - cap - 1, n + turns - cap - 1, 'WITHSCORES')
      return {math.ceil((tonumber(oldest[2]) + 60 - now) * 1000) + 1, 0}
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - burst * chat_gap - 1)
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    if kind == 2 and last[2] and tonumber(last[2]) + chat_gap > now then
      return {math.ceil((tonumber(last[2]) + chat_gap - now) * 1000), 0}
    end
    local n = redis.call('ZCOUNT', KEYS[3], now - burst * chat_gap, '+inf')
    if kind ~= 2 and n >= burst then
      local first = redis.call('ZRANGEBYSCORE', KEYS[3], now - burst * chat_gap, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      return {math.ceil((tonumber(first[2]) + burst * chat_gap - now) * 1000), 0}
    end
  end
end

-- the global rate
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 2 * W)
local slot
if kind == 0 then
  slot = now
else
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  slot = math.max(now, tat)
  if slot - now > 30 then return {1000, 0} end
end
local room = per_second
if kind == 2 then
  local li = tonumber(redis.call('GET', KEYS[6]) or '-1000')
  if now - li < 2 then room = math.max(1, per_second - math.max(1, math.floor(per_second / 10))) end
end
-- an answer goes now if the last second has room (the bulk reserved ahead of it yields at its
-- departure); the rest takes the second around its slot
local n
if kind == 0 then
  n = redis.call('ZCOUNT', KEYS[2], slot - W, slot)
else
  n = redis.call('ZCOUNT', KEYS[2], slot - W, slot + W)
end
if n + turns > room then
  if kind == 0 then
    local first = redis.call('ZRANGEBYSCORE', KEYS[2], slot - W, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return {math.max(5, math.ceil((tonumber(first[2]) + W - now) * 1000)), 0}
  end
  -- the second around the slot is full (answers took it): try a little later
  redis.call('SET', KEYS[1], tostring(slot + gap), 'PX', 60000)
  return {math.max(5, math.ceil((slot + gap - now) * 1000)), 0}
end
if kind ~= 0 then
  redis.call('SET', KEYS[1], tostring(slot + gap * turns), 'PX', 60000)
end
for i = 1, turns do
  redis.call('ZADD', KEYS[2], slot, member .. ':' .. i)
  if KEYS[3] ~= '' then redis.call('ZADD', KEYS[3], slot, member .. ':' .. i) end
end
redis.call('PEXPIRE', KEYS[2], 5000)
if KEYS[3] ~= '' then redis.call('PEXPIRE', KEYS[3], 61000) end
return {math.floor((slot - now) * 1000), 1}
"""
)

# At the moment of departure, after sleeping until the slot: the departures of every instance
# really made in the last second, counted where Telegram counts them (a process that woke late
# must not make a burst with those that did not). KEYS: 1 departures of the lane, 2 the chat's
# key (its entries are moved to when they really left). ARGV: 1 per second, 2 member, 3 turns,
# 4 now (tests only), 5 the chat's gap for a bulk message into a private chat (0: none; another
# instance's message may have left later than its slot). Returns 0 (gone) or the milliseconds
# to wait before asking again.
DEPART = (
    _now_from(4)
    + """
local per_second = tonumber(ARGV[1])
local member = ARGV[2]
local turns = tonumber(ARGV[3])
-- bulk leaves a tenth of the second to answers while a person is waiting for one (KEYS[3])
if ARGV[6] == '2' then
  local li = tonumber(redis.call('GET', KEYS[3]) or '-1000')
  if now - li < 2 then per_second = math.max(1, per_second - math.max(1, math.floor(per_second / 10))) end
end
-- a little over a second (each message counts from when its answer came, `landed`, which
-- is after Telegram counted it)
local W = 1.03
local chat_gap = tonumber(ARGV[5] or '0')
if chat_gap > 0 and KEYS[2] ~= '' then
  chat_gap = chat_gap + 0.1
  local recent = redis.call('ZRANGEBYSCORE', KEYS[2], now - chat_gap, now, 'WITHSCORES')
  local latest = nil
  for i = 1, #recent, 2 do
    if string.sub(recent[i], 1, string.len(member) + 1) ~= member .. ':' then
      local at = tonumber(recent[i + 1])
      if latest == nil or at > latest then latest = at end
    end
  end
  if latest ~= nil then return math.max(1, math.ceil((latest + chat_gap - now) * 1000)) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - W)
local n = redis.call('ZCARD', KEYS[1])
if n + turns > per_second then
  local oldest = redis.call('ZRANGE', KEYS[1], n + turns - per_second - 1, n + turns - per_second - 1, 'WITHSCORES')
  return math.max(1, math.ceil((tonumber(oldest[2]) + W - now) * 1000))
end
for i = 1, turns do
  redis.call('ZADD', KEYS[1], now, member .. ':' .. i)
  if KEYS[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', now, member .. ':' .. i) end
end
redis.call('PEXPIRE', KEYS[1], 5000)
return 0
"""
)

# The message's answer came: it counts from now (Telegram counts when a message arrived, which a
# slow connection makes later than when it left). KEYS: 1 departures of the lane, 2 the chat's
# key. ARGV: 1 member, 2 turns, 3 now (tests only).
LANDED = (
    _now_from(3)
    + """
for i = 1, tonumber(ARGV[2]) do
  redis.call('ZADD', KEYS[1], 'XX', 'GT', now, ARGV[1] .. ':' .. i)
  if KEYS[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', 'GT', now, ARGV[1] .. ':' .. i) end
end
return 0
"""
)

# KEYS: 1 pause key. ARGV: 1 seconds. A pause only ever grows.
PAUSE = (
    _now_from(2)
    + """
local until_ = now + tonumber(ARGV[1])
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > old then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""
)

# KEYS: 1 global pause, 2 chat pause. Returns the milliseconds still to wait (0: none).
PAUSED = (
    _now_from(1)
    + """
local a = tonumber(redis.call('GET', KEYS[1]) or '0')
local b = 0
if KEYS[2] ~= '' then b = tonumber(redis.call('GET', KEYS[2]) or '0') end
local w = math.max(a, b) - now
if w <= 0 then return 0 end
return math.ceil(w * 1000)
"""
)

FREE = "free"
PAID = "paid"
POOL_SIZE = 32  # connections to Redis per instance
BULK = 2  # bot.outbox.limits.Priority.BULK: a private chat's gap holds for it at departure too


class SharedBudget:
    """Turns taken in Redis (see the module's doc); the limiter (`bot.outbox.limits.Limiter`)
    asks this after its own in-process bookkeeping, so its named limits hold across instances."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._take = redis.register_script(TAKE)
        self._depart = redis.register_script(DEPART)
        self._landed = redis.register_script(LANDED)
        self._pause = redis.register_script(PAUSE)
        self._paused = redis.register_script(PAUSED)
        self._members = itertools.count()
        self._id = f"{os.getpid()}:{id(self):x}"

    @classmethod
    def from_url(cls, url: str, bot_id: int | str) -> SharedBudget:
        from redis.asyncio import BlockingConnectionPool, Redis

        # A broadcast has hundreds of messages waiting for their turn at once: they wait for a
        # connection rather than fail for want of one.
        pool = BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=30)
        return cls(Redis(connection_pool=pool), f"carebot:budget:{bot_id}")

    def _chat_key(self, chat_id: int | None, what: str = "chat") -> str:
        return "" if chat_id is None else f"{self.prefix}:{what}:{chat_id}"

    async def take(
        self,
        chat_id: int | None,
        kind: int,
        *,
        per_second: float,
        per_chat_seconds: float,
        private_burst: int,
        group_per_minute: int,
        group_reserve: int,
        lane: str = FREE,
        turns: int = 1,
        sleep: Any = asyncio.sleep,
    ) -> str:
        """Wait until this message may go (for every instance), and take its turn; the turn's
        name (for `landed`)."""
        member = self.member()
        while True:
            delay, granted = await self.try_take(
                chat_id,
                kind,
                per_second=per_second,
                per_chat_seconds=per_chat_seconds,
                private_burst=private_burst,
                group_per_minute=group_per_minute,
                group_reserve=group_reserve,
                lane=lane,
                turns=turns,
                member=member,
            )
            if granted:
                break
            await sleep(max(delay, 0.001))
        if delay > 0:
            await sleep(delay)
        gap = per_chat_seconds if kind == BULK and chat_id is not None and chat_id > 0 else 0.0
        while (
            wait := await self.depart(
                chat_id, per_second, member, lane=lane, turns=turns, gap=gap, kind=kind
            )
        ) > 0:
            await sleep(wait)
        return member

    async def landed(
        self,
        chat_id: int | None,
        member: str,
        *,
        lane: str = FREE,
        turns: int = 1,
        now: float | None = None,
    ) -> None:
        """The message is in: it counts from now, not from when it left."""
        await self._landed(
            keys=[f"{self.prefix}:gone:{lane}", self._chat_key(chat_id)],
            args=[member, turns, "" if now is None else repr(now)],
        )

    def member(self) -> str:
        """A name for one turn, unique across instances."""
        return f"{self._id}:{next(self._members)}"

    async def depart(
        self,
        chat_id: int | None,
        per_second: float,
        member: str,
        *,
        lane: str = FREE,
        turns: int = 1,
        now: float | None = None,
        gap: float = 0.0,
        kind: int = BULK,
    ) -> float:
        """The turn's message leaves now, if the last second of real departures has room (0);
        else the seconds to wait before asking again."""
        ms = await self._depart(
            keys=[
                f"{self.prefix}:gone:{lane}",
                self._chat_key(chat_id),
                f"{self.prefix}:interactive",
            ],
            args=[
                int(per_second),
                member,
                turns,
                "" if now is None else repr(now),
                repr(gap),
                kind,
            ],
        )
        return int(ms) / 1000

    async def try_take(
        self,
        chat_id: int | None,
        kind: int,
        *,
        per_second: float,
        per_chat_seconds: float,
        private_burst: int,
        group_per_minute: int,
        group_reserve: int,
        lane: str = FREE,
        turns: int = 1,
        now: float | None = None,
        member: str | None = None,
    ) -> tuple[float, bool]:
        """One call of the script: (seconds, True) the turn is taken and goes after that many
        seconds; (seconds, False) nothing taken, ask again after that many."""
        member = member or self.member()
        keys = [
            f"{self.prefix}:tat:{lane}",
            f"{self.prefix}:win:{lane}",
            self._chat_key(chat_id),
            f"{self.prefix}:pause",
            self._chat_key(chat_id, "pause"),
            f"{self.prefix}:interactive",
        ]
        args = [
            kind,
            repr(1.0 / per_second),
            int(per_second),
            1 if chat_id is not None and chat_id < 0 else 0,
            repr(per_chat_seconds),
            private_burst,
            group_per_minute,
            group_reserve,
            member,
            turns,
            "" if now is None else repr(now),
        ]
        delay_ms, granted = await self._take(keys=keys, args=args)
        return int(delay_ms) / 1000, bool(granted)

    async def pause(self, chat_id: int | None, seconds: float, now: float | None = None) -> None:
        key = f"{self.prefix}:pause" if chat_id is None else self._chat_key(chat_id, "pause")
        await self._pause(keys=[key], args=[repr(float(seconds)), "" if now is None else repr(now)])

    async def paused_for(self, chat_id: int | None, now: float | None = None) -> float:
        ms = await self._paused(
            keys=[f"{self.prefix}:pause", self._chat_key(chat_id, "pause")],
            args=["" if now is None else repr(now)],
        )
        return int(ms) / 1000

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()
        # a pool given to the client is not the client's to close
        await self.redis.connection_pool.disconnect()
