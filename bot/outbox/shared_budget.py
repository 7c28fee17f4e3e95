"""One Telegram budget for every instance of the bot: the limiter's turns taken in Redis.

Several processes sending for the same bot must together keep Telegram's limits: about 30
messages a second in all (up to 1,000 for paid broadcasts), one a second into a private chat,
20 a minute into a group, and a `retry_after` Telegram gave one of them holds for all. Each step
of a message (its turn, its departure, its call come back) is one call of a Lua script, which
Redis runs atomically on its own clock (`TIME`), so two instances can never both take the last
place of a second.

Taking a turn (`TAKE`) either grants it or says how long to wait before asking again (the chat
or the whole bot is paused, the chat's gap is not over, the group's minute is full). A broadcast's
message is granted the lane's next slot, a gap after the last one (it may be a little ahead: the
caller sleeps until then, and the instances are served first come, first served); an answer or a
relay is granted at once. When the message is about to leave (`DEPART`), the departures of every
instance in the last second are counted, and that is where the rate holds: an answer finds room
there because a broadcast leaves some while a person is waiting.

Keys (all under one prefix, per bot): `<p>:tat:<lane>` the next bulk slot of the lane ("free"
or "paid"), `<p>:gone:<lane>` the departures of the last second, `<p>:chat:<id>` a chat's
recent departures, `<p>:pause` and `<p>:pause:<id>` a `retry_after`, `<p>:interactive` when a
person last asked, `<p>:asking:<lane>` the answers waiting for their turn and `<p>:answers:<lane>`
those of the last second (bulk leaves room for answers then: see `_UNUSED_RESERVE`).

Telegram counts a message when it arrives. A departure is counted from then on as if it were still
on its way (`hold` seconds ahead, longer than any call may take) until whatever came back came
back (`landed`), and from that moment on: no earlier than its arrival, so a window of just over
a second (`WINDOW`) keeps the rate however slow the connection, or however late Telegram gets to
a request. A message thus holds its place for its round trip and a second: the lane's round trip
(`<p>:rtt:<lane>`, averaged at each answer) spaces a broadcast's slots to match, so its messages
find room when their slot comes instead of queueing at the departure. A turn taken but not used
(a broadcast cancelled meanwhile) is given back (`release`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import Any

log = logging.getLogger("carebot.budget")

WINDOW = 1.005  # Telegram's second, and a few milliseconds for clocks read a little apart
# A message on its way counts as just sent until its call came back, for this long at most (the
# Bot API session's timeout, TELEGRAM_TIMEOUT, and a margin: `SharedBudget.from_url`).
HOLD = 20.0


def _now_from(argument: int) -> str:
    """The Lua that sets `now`: ARGV[argument] when a test gives one, else Redis's own clock (the
    one every instance shares). Each script below begins with it."""
    return f"""local now
if ARGV[{argument}] and ARGV[{argument}] ~= '' then now = tonumber(ARGV[{argument}]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""


# While a person waits for an answer (one asked in the last two seconds), bulk leaves a tenth of
# the second to answers. While answers are still waiting for their turn (`asking`), all of that
# tenth: bulk stops short of it and the answers take the second's places as they free, before
# bulk. Once none waits, only what the answers of the last second have not used of it (a steady
# trickle of answers does not cost the broadcast its tenth on top). Answers go on the free lane
# only: the paid one has no key for it ('') and keeps its whole rate.
_UNUSED_RESERVE = """
local function unused_reserve(asked_key, answers_key, asking_key, per_second, now, W)
  if asked_key == '' then return 0 end
  local asked = tonumber(redis.call('GET', asked_key) or '-1000')
  if now - asked >= 2 then return 0 end
  local reserve = math.min(per_second - 1, math.max(1, math.floor(per_second / 10)))
  redis.call('ZREMRANGEBYSCORE', asking_key, '-inf', now - 10)
  if redis.call('ZCARD', asking_key) > 0 then return reserve end
  local answered = redis.call('ZCOUNT', answers_key, now - W, '+inf')
  return math.max(0, reserve - answered)
end
"""


# KEYS: 1 tat (the lane's next bulk slot), 2 chat, 3 global pause, 4 chat pause, 5 last
#       interactive, 6 answers of the lane, 7 the lane's round trip, 8 answers waiting
# ARGV: 1 kind (0 interactive, 1 relay, 2 bulk), 2 per second, 3 chat kind (0 private, 1 group),
#       4 per-chat gap (s), 5 private burst, 6 group per minute, 7 group reserve, 8 a unique
#       member, 9 turns (an album's items), 10 now (tests only; empty: Redis's own clock, the one
#       every instance shares), 11 WINDOW
# Returns {delay_ms, granted}: granted 1 → the turn is the caller's after delay_ms;
# granted 0 → ask again after delay_ms.
TAKE = (
    _now_from(10)
    + _UNUSED_RESERVE
    + """
local kind = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local is_group = tonumber(ARGV[3]) == 1
local chat_gap = tonumber(ARGV[4])
local burst = tonumber(ARGV[5])
local group_cap = tonumber(ARGV[6])
local reserve = tonumber(ARGV[7])
local member = ARGV[8]
local turns = tonumber(ARGV[9])
local W = tonumber(ARGV[11])
-- a message may leave (and arrive) a little after its slot: a chat's gap keeps this much over
chat_gap = chat_gap + 0.1

local wait = 0
local p = tonumber(redis.call('GET', KEYS[3]) or '0')
if p > now then wait = p - now end
p = tonumber(redis.call('GET', KEYS[4]) or '0')
if p - now > wait then wait = p - now end
if wait > 0 then return {math.ceil(wait * 1000), 0} end

-- the chat's own limits
if KEYS[2] ~= '' then
  if is_group then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
    local cap = group_cap
    if kind ~= 0 then cap = group_cap - reserve end
    local n = redis.call('ZCARD', KEYS[2])
    if n + turns > cap then
      local oldest = redis.call('ZRANGE', KEYS[2], n + turns - cap - 1, n + turns - cap - 1, 'WITHSCORES')
      return {math.ceil((tonumber(oldest[2]) + 60 - now) * 1000) + 1, 0}
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - burst * chat_gap - 1)
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    if kind == 2 and last[2] and tonumber(last[2]) + chat_gap > now then
      return {math.ceil((tonumber(last[2]) + chat_gap - now) * 1000), 0}
    end
    local n = redis.call('ZCOUNT', KEYS[2], now - burst * chat_gap, '+inf')
    if kind ~= 2 and n >= burst then
      local first = redis.call('ZRANGEBYSCORE', KEYS[2], now - burst * chat_gap, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      return {math.ceil((tonumber(first[2]) + burst * chat_gap - now) * 1000), 0}
    end
  end
end

-- the global rate: bulk takes the next slot, a gap after the last one taken (the rate, less
-- what answers may need of it); an answer or a relay goes now. Either way the departure itself
-- is counted when it leaves (DEPART): that is where the limit holds. A person waits for an
-- answer: from now on bulk leaves room for it.
if kind == 0 then redis.call('SET', KEYS[5], tostring(now), 'PX', 5000) end
local slot = now
if kind == 2 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  slot = math.max(now, tat)
  if slot - now > 30 then return {1000, 0} end
  local room = per_second - unused_reserve(KEYS[5], KEYS[6], KEYS[8], per_second, now, W)
  -- each message holds its place for its round trip and the second after it
  local rtt = math.min(1, tonumber(redis.call('GET', KEYS[7]) or '0'))
  redis.call('SET', KEYS[1], tostring(slot + (W + rtt) / room * turns), 'PX', 60000)
end
if KEYS[2] ~= '' then
  for i = 1, turns do redis.call('ZADD', KEYS[2], slot, member .. ':' .. i) end
  redis.call('PEXPIRE', KEYS[2], 61000)
end
if kind == 0 and KEYS[5] ~= '' then  -- waiting for its turn until it departs
  redis.call('ZADD', KEYS[8], now, member)
  redis.call('PEXPIRE', KEYS[8], 15000)
end
return {math.floor((slot - now) * 1000), 1}
"""
)

# At the moment of departure, after sleeping until the slot: the departures of every instance
# in the last second, counted where Telegram counts them (a process that woke late must not make
# a burst with those that did not); the message counts as on its way (now + HOLD) until `landed`.
# KEYS: 1 departures of the lane, 2 the chat's key (its entries are moved to when they really
# left), 3 last interactive, 4 answers of the lane, 5 the lane's tat (bulk: its slots move to
# when there is room again), 6 answers waiting. ARGV: 1 per second, 2 member, 3 turns, 4 now (tests only), 5 the
# chat's gap for a bulk message into a private chat (0: none; another instance's message may
# have left later than its slot), 6 kind, 7 WINDOW, 8 hold. Returns 0 (gone) or the
# milliseconds to wait before asking again.
DEPART = (
    _now_from(4)
    + _UNUSED_RESERVE
    + """
local per_second = tonumber(ARGV[1])
local member = ARGV[2]
local turns = tonumber(ARGV[3])
local kind = ARGV[6]
local W = tonumber(ARGV[7])
local hold = tonumber(ARGV[8])
if kind == '2' then
  per_second = per_second - unused_reserve(KEYS[3], KEYS[4], KEYS[6], per_second, now, W)
end
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
  local at = tonumber(oldest[2])
  -- still on its way: it counts for at least a second after its answer, whenever that comes
  local wait = W
  if at <= now then wait = math.max(0.001, at + W - now) end
  if kind == '2' then
    -- the slots given out ahead were too close: the next ones start when there is room
    local tat = tonumber(redis.call('GET', KEYS[5]) or '0')
    if tat < now + wait then redis.call('SET', KEYS[5], tostring(now + wait), 'PX', 60000) end
  end
  return math.ceil(wait * 1000)
end
for i = 1, turns do
  redis.call('ZADD', KEYS[1], now + hold, member .. ':' .. i)
  if KEYS[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', now, member .. ':' .. i) end
end
redis.call('PEXPIRE', KEYS[1], math.ceil((hold + W) * 1000) + 1000)
-- a group's minute counts from here on (TAKE set the key's life from the turn)
if KEYS[2] ~= '' then redis.call('PEXPIRE', KEYS[2], 61000) end
if kind == '0' then
  redis.call('ZREM', KEYS[6], member)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - W)
  redis.call('ZADD', KEYS[4], now, member)
  redis.call('PEXPIRE', KEYS[4], 5000)
end
return 0
"""
)

# The call came back: the message counts from now (Telegram counted it when it arrived, no later
# than this), and its round trip goes into the lane's average. KEYS: 1 departures of the lane,
# 2 the chat's key, 3 the lane's round trip. ARGV: 1 member, 2 turns, 3 now (tests only), 4 hold.
LANDED = (
    _now_from(3)
    + """
local held = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1] .. ':1') or '0')
if held > now then
  local rtt = now - (held - tonumber(ARGV[4]))
  local mean = tonumber(redis.call('GET', KEYS[3]) or tostring(rtt))
  redis.call('SET', KEYS[3], tostring(mean + (rtt - mean) / 5), 'PX', 60000)
end
for i = 1, tonumber(ARGV[2]) do
  redis.call('ZADD', KEYS[1], 'XX', 'LT', now, ARGV[1] .. ':' .. i)
  if KEYS[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', 'GT', now, ARGV[1] .. ':' .. i) end
end
-- a group's minute counts from its arrival: its key lives a minute from here
if KEYS[2] ~= '' then redis.call('PEXPIRE', KEYS[2], 61000) end
return 0
"""
)

# A turn taken but not used (the message was withdrawn, or its claim ran out): its places go.
# KEYS: 1 departures of the lane, 2 the chat's key. ARGV: 1 member, 2 turns.
RELEASE = """
for i = 1, tonumber(ARGV[2]) do
  redis.call('ZREM', KEYS[1], ARGV[1] .. ':' .. i)
  if KEYS[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. i) end
end
return 0
"""

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

    def __init__(self, redis: Any, prefix: str, *, hold: float = HOLD) -> None:
        self.redis = redis
        self.prefix = prefix
        self.hold = hold
        self._take = redis.register_script(TAKE)
        self._depart = redis.register_script(DEPART)
        self._landed = redis.register_script(LANDED)
        self._release = redis.register_script(RELEASE)
        self._pause = redis.register_script(PAUSE)
        self._paused = redis.register_script(PAUSED)
        self._members = itertools.count()
        self._id = f"{os.getpid()}:{id(self):x}"

    @classmethod
    def from_url(cls, url: str, bot_id: int | str, *, call_timeout: float) -> SharedBudget:
        """The budget of this bot in the Redis at `url`; `call_timeout` is the longest a Bot API
        call may take (a message on its way counts as just sent for that long, and a little)."""
        from redis.asyncio import BlockingConnectionPool, Redis

        # A broadcast has hundreds of messages waiting for their turn at once: they wait for a
        # connection rather than fail for want of one.
        pool = BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=30)
        return cls(Redis(connection_pool=pool), f"carebot:budget:{bot_id}", hold=call_timeout + 5)

    def _asked_key(self, lane: str) -> str:
        """When a person last asked: answers share the free lane's second, not the paid one's."""
        return f"{self.prefix}:interactive" if lane == FREE else ""

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
            keys=[
                f"{self.prefix}:gone:{lane}",
                self._chat_key(chat_id),
                f"{self.prefix}:rtt:{lane}",
            ],
            args=[member, turns, "" if now is None else repr(now), repr(self.hold)],
        )

    async def release(
        self, chat_id: int | None, member: str, *, lane: str = FREE, turns: int = 1
    ) -> None:
        """The turn was taken but no message went: its places are free again."""
        await self._release(
            keys=[f"{self.prefix}:gone:{lane}", self._chat_key(chat_id)], args=[member, turns]
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
                self._asked_key(lane),
                f"{self.prefix}:answers:{lane}",
                f"{self.prefix}:tat:{lane}",
                f"{self.prefix}:asking:{lane}",
            ],
            args=[
                int(per_second),
                member,
                turns,
                "" if now is None else repr(now),
                repr(gap),
                kind,
                repr(WINDOW),
                repr(self.hold),
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
            self._chat_key(chat_id),
            f"{self.prefix}:pause",
            self._chat_key(chat_id, "pause"),
            self._asked_key(lane),
            f"{self.prefix}:answers:{lane}",
            f"{self.prefix}:rtt:{lane}",
            f"{self.prefix}:asking:{lane}",
        ]
        args = [
            kind,
            int(per_second),
            1 if chat_id is not None and chat_id < 0 else 0,
            repr(per_chat_seconds),
            private_burst,
            group_per_minute,
            group_reserve,
            member,
            turns,
            "" if now is None else repr(now),
            repr(WINDOW),
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
