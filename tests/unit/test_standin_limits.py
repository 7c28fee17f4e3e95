"""The stand-in's limits that several instances must keep together (tests/e2e/test_instances.py,
bench/scale.py): one message a second into a private chat (`chat_gap`), 30 a second in all
(`rate_limit`), and paid broadcasts (allow_paid_broadcast) in a second of their own, up to
`paid_rate_limit`, counted in `paid_sent`; every refusal a 429 counted in `throttled`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import TOKEN
from tests.telegram_server import TelegramServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def send(telegram: TelegramServer) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as http:

        async def sending(chat_id: int, **params: Any) -> int:
            async with http.post(
                f"{telegram.url}/bot{TOKEN}/sendMessage",
                json={"chat_id": chat_id, "text": "x", **params},
            ) as response:
                return response.status

        yield sending


async def test_one_message_a_second_into_a_private_chat(
    telegram: TelegramServer, send: Any
) -> None:
    clock = telegram.clock = Clock()
    telegram.chat_gap = 1.0
    assert await send(5) == 200
    clock.now += 0.9
    assert await send(5) == 429  # too soon for this chat
    assert await send(6) == 200  # another chat is free
    clock.now += 0.1
    assert await send(5) == 200
    assert await send(-100) == 200 and await send(-100) == 200  # groups have their own limit
    assert telegram.throttled == 1 and telegram.throttled_per_chat[5] == 1


async def test_paid_broadcasts_have_their_own_second(telegram: TelegramServer, send: Any) -> None:
    clock = telegram.clock = Clock()
    telegram.rate_limit, telegram.paid_rate_limit = 2, 3
    assert [await send(10 + n) for n in range(3)] == [200, 200, 429]  # the free second is full
    paid = [await send(20 + n, allow_paid_broadcast=True) for n in range(4)]
    assert paid == [200, 200, 200, 429]  # paid sends pass it, up to their own limit
    assert telegram.paid_sent == 3 and telegram.throttled == 2
    clock.now += 1.0
    assert await send(30) == 200 and await send(31, allow_paid_broadcast=True) == 200
