"""Bring a friend end to end: A's /card shows the personal link and a share button; B opens it,
onboards and gets the bonus; staff record B's sale and A is told of the reward, which /card
shows; /referrals lists A; someone already with us opening a link changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bot.clock import FixedClock
from tests.e2e.helpers import (
    answer_offers,
    bot_on,
    business_plus,
    customer_of,
    onboard,
    reply_of,
    tap,
)
from tests.harness import InProcessBot
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

REFERRAL = """
[loyalty.cashback]
enabled = true
percent = 5
expire_months = 12

[loyalty.referral]
enabled = true
friend_bonus = 300
referrer_reward = 500
"""


@pytest.fixture
async def referral_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    async with bot_on(telegram, database_url, clock, business_plus(tmp_path, REFERRAL)) as running:
        yield running


async def test_a_friend_joins_buys_and_the_referrer_is_rewarded(
    referral_bot: InProcessBot, telegram: TelegramServer, olga: Person
) -> None:
    anna = telegram.user(5001, "Анна", username="anna")
    await onboard(anna, phone="79161230001")
    await anna.send("/card")
    card = await anna.reply()
    assert "Приведите друга" in card.text and "300 баллов" in card.text
    share = card.button("Поделиться")["url"]
    query = parse_qs(urlparse(share).query)
    link = query["url"][0]
    assert share.startswith("https://t.me/share/url?") and "Загляни" in query["text"][0]
    assert link.startswith("https://t.me/carebot_test_bot?start=ref_") and link in card.text
    payload = link.split("start=")[1]
    anna_id = (await customer_of(referral_bot.db, 5001)).id  # type: ignore[union-attr]
    assert payload != f"ref_{anna_id}"
    await anna.send("/card")
    assert (await anna.reply()).button("Поделиться")["url"] == share  # the same link

    await anna.send(f"/start {payload}")  # her own link: she is with us already
    assert "Вы уже с нами" in (await anna.reply()).text
    await anna.reply()  # the usual "welcome back"

    boris = telegram.user(5002, "Борис", username="boris")
    await boris.send(f"/start {payload}")
    await boris.press(await boris.reply(), "✅")
    await boris.next("answerCallbackQuery")
    await boris.next("editMessageReplyMarkup")
    await boris.reply()  # the phone question
    await boris.send_contact("79161230002")
    await boris.reply()  # "number saved"
    assert "вам начислено 300 баллов" in (await boris.reply()).text
    await boris.reply()  # the birthday question
    await boris.send("14.03.1990")
    await tap(boris, await boris.reply(), "Борис")
    await answer_offers(boris, await boris.reply(), True)
    boris_id = (await customer_of(referral_bot.db, 5002)).id  # type: ignore[union-attr]
    await boris.send("/card")
    assert "Баллов: <b>300</b>" in (await reply_of(boris, "loyalty_card")).text
    await olga.send("/referrals")
    listed = (await olga.reply()).text
    assert f"Анна (#{anna_id}): пришли 1 · купили 0" in listed

    await olga.send(f"/sale #{boris_id} 2000")
    await olga.reply()
    reward = await reply_of(anna, "referral_reward")
    assert "Вам начислено 500 баллов" in reward.text
    await anna.send("/card")
    assert "Баллов: <b>500</b>" in (await reply_of(anna, "loyalty_card")).text
    await olga.send("/referrals 30")
    assert f"Анна (#{anna_id}): пришли 1 · купили 1" in (await olga.reply()).text
    await olga.send(f"/sale #{boris_id} 1000")  # the second sale: no second reward
    await olga.reply()
    await anna.send("/card")
    assert "Баллов: <b>500</b>" in (await reply_of(anna, "loyalty_card")).text
    await anna.send("/referrals")
    assert "для сотрудников" in (await anna.reply()).text
    await olga.send("/referrals вчера")
    assert "не период" in (await olga.reply()).text
