"""Gift certificates through the real bot: /gift answers with a link, the first to open it (a
newcomer, after the data consent) claims it, a second person is refused, staff spend it in two
parts and a third spending is refused."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.db.models import Certificate, CertificateUse
from tests.e2e.helpers import answer_offers, customer_id_of, onboard, tap
from tests.telegram_server import Person, TelegramServer

pytestmark = pytest.mark.in_process

LINK = re.compile(r"https://t\.me/carebot_test_bot\?start=(gift_([A-Z0-9]+))")


async def test_issued_claimed_once_and_spent_in_two_parts(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send("/gift 3000 for Anna")
    issued = await olga.reply()
    assert issued.template == "gift_issued"
    assert "3\u00a0000\u00a0₽" in issued.text and "«Anna»" in issued.text
    found = LINK.search(issued.text)
    assert found, issued.text
    payload, code = found[1], found[2]
    assert f"<code>{code}</code>" in issued.text

    # a newcomer opens it: onboarding as for anyone, the certificate theirs once they consent
    anna = telegram.user(5001, "Анна")
    await anna.send(f"/start {payload}")
    await tap(anna, await anna.reply(), "✅")
    claimed = await anna.reply()
    assert claimed.template == "gift_claim" and "теперь ваш" in claimed.text
    assert f"<code>{code}</code>" in claimed.text and "3\u00a0000\u00a0₽" in claimed.text
    assert (await anna.reply()).template == "ask_phone"
    await anna.send_contact("79161234567")
    await anna.reply()  # "number saved"
    await anna.reply()  # the birthday question
    await anna.send("14.03.1990")
    await tap(anna, await anna.reply(), "Анна")
    await answer_offers(anna, await anna.reply(), True)
    anna_id = await customer_id_of(carebot.db, 5001)

    # a second person who opens the forwarded link is told politely; nothing changes
    boris = telegram.user(5002, "Борис")
    await onboard(boris, phone="79031112233")
    await boris.send(f"/start {payload}")
    refused = await boris.reply()
    assert refused.template == "gift_claim" and "уже получил другой человек" in refused.text
    assert code not in refused.text and "3\u00a0000" not in refused.text
    await boris.send("/start gift_FORGED99")
    forged = await boris.reply()
    assert forged.template == "gift_claim" and "не нашли" in forged.text
    await anna.send(f"/start {payload}")
    again = await anna.reply()
    assert again.template == "gift_claim" and "уже ваш" in again.text
    await anna.quiet()

    await anna.send("/profile")
    profile = await anna.reply()
    assert f"<code>{code}</code>: осталось 3\u00a0000\u00a0₽ из 3\u00a0000\u00a0₽" in profile.text

    # spent at the counter in two parts; the third is refused
    await olga.send(f"/redeem {code}")
    how = await olga.reply()
    assert how.template == "staff_usage" and f"/redeem {code} 1000" in how.text
    await olga.send(f"/redeem {code.lower()} 1000")
    first = await olga.reply()
    assert first.template == "staff_certificate"
    assert "списано 1\u00a0000\u00a0₽, осталось 2\u00a0000\u00a0₽" in first.text
    await olga.send(f"/redeem {code} 2500")
    too_much = await olga.reply()
    assert "ничего не списано" in too_much.text and f"/redeem {code} 2000" in too_much.text
    await olga.send(f"/redeem {code} 2000")
    rest = await olga.reply()
    assert "списано 2\u00a0000\u00a0₽, осталось 0\u00a0₽" in rest.text
    await olga.send(f"/redeem {code} 100")
    third = await olga.reply()
    assert third.template == "staff_certificate" and "израсходован полностью" in third.text

    async with carebot.db.reading() as repos:
        owner = (
            await repos.session.execute(select(Certificate.customer_id, Certificate.for_name))
        ).one()
        uses = list(await repos.session.scalars(select(CertificateUse.amount_minor)))
    assert tuple(owner) == (anna_id, "Anna")
    assert sorted(uses) == [100000, 200000]
    await anna.send("/profile")
    assert code not in (await anna.reply()).text  # nothing left: no longer shown
    await olga.send(f"/find #{anna_id}")
    card = await olga.reply()
    await olga.press(card, "История")
    history = (await olga.reply()).text
    assert f"Ольга (@olga_admin) · списано с сертификата {code}: 2\u00a0000\u00a0₽" in history
    assert f"Ольга (@olga_admin) · списано с сертификата {code}: 1\u00a0000\u00a0₽" in history


async def test_gift_escapes_the_name_and_a_customer_is_told_how_to_buy(
    carebot, telegram: TelegramServer, olga: Person
) -> None:
    await olga.send("/gift 500 для <b>Мамы</b> & Co")
    issued = await olga.reply()
    assert "«&lt;b&gt;Мамы&lt;/b&gt; &amp; Co»" in issued.text
    await olga.send("/gift пятьсот")
    assert "не сумма" in (await olga.reply()).text
    await olga.send("/gift")
    assert "/gift 3000 для Анны" in (await olga.reply()).text
    # a customer's /gift in their own chat: how to buy one (the staff issue it once paid)
    customer = telegram.user(5003, "Кто-то")
    await customer.send("/gift 500")
    asked = await customer.reply()
    assert asked.template == "gift_ask" and "Напишите здесь, на какую сумму" in asked.text
    async with carebot.db.reading() as repos:
        assert len(list(await repos.session.scalars(select(Certificate)))) == 1
