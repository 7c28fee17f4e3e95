"""The test harness itself (tests/harness.py), over HTTP and in-process: `quiet()` waits until
the bot is idle, so a slow bot no longer passes it; each message names its template."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import onboard
from tests.harness import RunningBot
from tests.telegram_server import TelegramServer

MODES = [
    pytest.param("http", marks=pytest.mark.http),
    pytest.param("in_process", marks=pytest.mark.in_process),
]


@pytest.mark.parametrize("mode", MODES)
async def test_quiet_waits_for_a_slow_bot(
    carebot: RunningBot, telegram: TelegramServer, mode: str
) -> None:
    assert carebot.app is not None
    customers = carebot.app.customers
    find = customers.find

    async def slow_find(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)  # longer than the 0.3 s quiet() used to wait
        return await find(*args, **kwargs)

    customers.find = slow_find  # type: ignore[method-assign]
    anna = telegram.user(9101)
    await anna.send("/start")
    with pytest.raises(AssertionError, match="unexpected calls"):
        await anna.quiet()
    assert (await anna.reply()).template == "onboarding_intro"
    customers.find = find  # type: ignore[method-assign]
    await anna.send("/privacy")
    await anna.reply()
    await anna.quiet()  # and an idle bot is quiet at once


@pytest.mark.parametrize("mode", MODES)
async def test_quiet_sees_what_the_outbox_sends_later(
    carebot: RunningBot, telegram: TelegramServer, mode: str
) -> None:
    """Nothing is being handled, but the clock moved past a planned message's time: quiet()
    wakes the outbox sender (which would look on its own only within a second) and waits."""
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT)
    anna = telegram.user(9102)
    await onboard(anna)
    await olga.send("/sale 4567 1500")
    await olga.reply()
    await anna.quiet()  # not before its time
    carebot.clock.advance(timedelta(hours=3))
    with pytest.raises(AssertionError, match="unexpected calls"):
        await anna.quiet()


@pytest.mark.parametrize("mode", MODES)
async def test_each_message_names_its_template(
    carebot: RunningBot, telegram: TelegramServer, mode: str
) -> None:
    anna = telegram.user(9103)
    await anna.send("/start")
    intro = await anna.reply()
    assert intro.template == "onboarding_intro"
    await anna.press(intro, "✅")
    assert (await anna.next("answerCallbackQuery")).template == "consent_thanks"
    await anna.next("editMessageReplyMarkup")
    assert (await anna.reply()).template == "ask_phone"
