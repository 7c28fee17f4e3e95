"""The whole loyalty wallet in one customer's journey, as issue 18's "Done when" walks it, with a
business file that has every program on: Anna joins (welcome coupon and welcome points), staff
record her sales in the admin chat, cashback accrues, the daily tier planner takes her to Silver
and she is congratulated; staff ask her to pay part of a check with points and she confirms with
one tap; she completes the stamp card and staff redeem its coupon; she brings Boris, who gets his
bonus at once while she gets her reward only after his first purchase; staff issue a certificate
whose link is forwarded, claimed by Vera, refused to Gleb, and spent in two parts. Every check is
on what the bot sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import Purchase
from tests.conftest import ADMIN_CHAT
from tests.e2e.helpers import (
    bot_on,
    business_plus,
    customer_id_of,
    reply_of,
)
from tests.harness import InProcessBot
from tests.telegram_server import Call, Person, TelegramServer

pytestmark = pytest.mark.in_process

EVERY_PROGRAM = """
[loyalty.cashback]
enabled = true
percent = 5
max_share = 0.3
expire_months = 12
welcome_bonus = 150

[[loyalty.tiers]]
name = "Silver"
min_spend = 5000
min_visits = 10
percent = 10

[loyalty.stamps]
enabled = true
every = 3
reward = "free"
services = ["manicure"]
expire_months = 12
valid_days = 30

[loyalty.referral]
enabled = true
friend_bonus = 300
referrer_reward = 500

[[loyalty.packages]]
name = "nails5"
service = "manicure"
visits = 5
price = 8000
expire_months = 6
remind_days_before = 7
"""
NBSP = "\u00a0"


@pytest.fixture
async def wallet_bot(
    tmp_path: Path, telegram: TelegramServer, database_url: str, clock: FixedClock
) -> AsyncIterator[InProcessBot]:
    business = business_plus(tmp_path, EVERY_PROGRAM)
    async with bot_on(telegram, database_url, clock, business) as running:
        yield running


async def gather(
    person: Person, *templates: str, got: dict[str, Call] | None = None, tries: int = 12
) -> dict[str, Call]:
    """The person's next messages until each of `templates` came, in whatever order the answers
    and the outbox's receipts arrive (a button's answer and edits skipped), added to `got`."""
    got = {} if got is None else got
    for _ in range(tries):
        if all(template in got for template in templates):
            return got
        call = await person.next(timeout=15)
        if call.method == "sendMessage":
            got.setdefault(call.template or "", call)
    missing = [template for template in templates if template not in got]
    raise AssertionError(f"no {missing} in {list(got)}")


async def join(person: Person, phone: str, start: str = "/start") -> dict[str, Call]:
    """Consent, phone, birthday, name and yes to offers, from `start`; every message on the way
    (the welcome points' receipt comes through the outbox, in between or later)."""
    await person.send(start)
    got = await gather(person, "onboarding_intro")
    await person.press(got["onboarding_intro"], "✅")
    await gather(person, "ask_phone", got=got)
    await person.send_contact(phone)
    await gather(person, "phone_saved", "ask_birthday", got=got)
    await person.send("14.03.1990")
    await gather(person, "ask_name", got=got)
    await person.press(got["ask_name"], person.first_name)
    await gather(person, "ask_offers", got=got)
    await person.press(got["ask_offers"], "Да")
    return await gather(person, "welcome_coupon", got=got)


async def card(person: Person) -> str:
    await person.send("/card")
    return (await reply_of(person, "loyalty_card")).text


async def sale(olga: Person, command: str) -> Call:
    await olga.send(command)
    return await reply_of(olga, "staff_sale_done")


async def test_a_customers_whole_loyalty_journey(
    wallet_bot: InProcessBot, telegram: TelegramServer, clock: FixedClock
) -> None:
    app = wallet_bot.app
    assert app is not None
    olga = telegram.staff(9001, "Ольга", ADMIN_CHAT, username="olga_admin")
    anna = telegram.user(5001, "Анна", username="anna")

    # 1. Anna joins: the welcome coupon, and the welcome points with their own receipt
    joined = await gather(anna, "welcome_bonus", got=await join(anna, "79161230001"))
    assert "начислено 150 приветственных баллов" in joined["welcome_bonus"].text
    assert "<code>" in joined["welcome_coupon"].text
    anna_id = await customer_id_of(wallet_bot.db, 5001)
    assert "Баллов: <b>150</b>" in await card(anna)

    # 2. the first sale: cashback credited, staff see balance, stamps and the pay button
    sold = await sale(olga, f"/sale #{anna_id} 2000 маникюр")
    assert "Баллов у клиента: 250." in sold.text  # 150 + 5 % of 2 000
    assert "Карта штампов: 1 из 3 ✦✧✧." in sold.text
    assert "Уровень клиента" not in sold.text
    assert any("Оплатить баллами" in text for text in sold.button_texts)
    sold = await sale(olga, f"/sale #{anna_id} 3000 маникюр")
    assert "Баллов у клиента: 400." in sold.text and "2 из 3 ✦✦✧" in sold.text
    first = await card(anna)
    assert "Баллов: <b>400</b>" in first and "400 баллов сгорят 23.11.2027" in first
    assert "За каждую покупку начисляем 5" + NBSP + "%" in first
    assert "Карта штампов</b>: 2 из 3 ✦✦✧" in first

    # 3. a week on, the daily tier planner finds 5 000 ₽ in 12 months: Silver, congratulated
    await anna.quiet()
    clock.advance(timedelta(days=8))
    assert (await app.tick())["loyalty_tiers"] == 1
    assert (await app.tick())["loyalty_tiers"] == 0
    up = await reply_of(anna, "tier_up", tries=5)
    assert "Анна, поздравляем! Теперь вы в клубе «Silver»" in up.text
    silver = await card(anna)
    assert "Уровень: <b>Silver</b> — 10" + NBSP + "% баллами с каждой покупки" in silver

    # 4. a pedicure at Silver's 10 %; staff press "pay with points", Anna confirms with one tap
    sold = await sale(olga, f"/sale #{anna_id} 1000 педикюр")
    assert "Баллов у клиента: 500." in sold.text and "Уровень клиента: Silver." in sold.text
    purchase_id = int(sold.text.split("Номер продажи: ")[1].split(".")[0])
    await olga.press(sold, "Оплатить баллами")
    asked = await reply_of(olga, "points_pay_asked")
    assert f"оплатить баллами 300 из 1{NBSP}000" in asked.text  # max_share: 30 % of the check
    request = await reply_of(anna, "points_request")
    assert "Списать <b>300</b> баллов" in request.text
    assert "Баллов: <b>500</b>" in await card(anna)  # asked, not spent: the balance before
    await anna.press(request, "Списать баллы")
    done = await anna.next("editMessageText")
    assert "списано 300 баллов" in done.text and "Осталось баллов: 200" in done.text
    notice = await reply_of(olga, "points_answered_staff")
    assert f"списано 300, к оплате 700{NBSP}₽ вместо 1{NBSP}000{NBSP}₽" in notice.text
    after = await card(anna)
    assert "Баллов: <b>200</b>" in after  # the balance after
    assert (
        "📜 <b>История баллов</b>\n"
        "01.12.2026 · −300 · оплата покупки баллами\n"
        "01.12.2026 · +100 · за покупку\n"
        "23.11.2026 · +150 · за покупку\n"
        "23.11.2026 · +100 · за покупку\n"
        "23.11.2026 · +150 · приветственный бонус"
    ) in after
    async with wallet_bot.db.reading() as repos:
        reduced = await repos.session.scalar(
            select(Purchase.amount_minor).where(Purchase.id == purchase_id)
        )
    assert reduced == 70_000

    # 5. the third manicure completes the stamp card; the reward coupon is redeemed once
    sold = await sale(olga, f"/sale #{anna_id} 2000 маникюр")
    assert "Баллов у клиента: 400." in sold.text  # 200 + 10 % of 2 000
    assert "Карта штампов заполнена: купон-награда <code>" in sold.text
    code = sold.text.split("<code>")[1].split("</code>")[0]
    reward = await reply_of(anna, "stamp_reward")
    assert "ваша карта штампов заполнена: 3 из 3 ✦✦✦" in reward.text
    assert f"<code>{code}</code>" in reward.text
    await olga.send(f"/redeem {code}")
    assert (
        f"Купон <code>{code}</code> погашен: скидка 100%"
        in (await reply_of(olga, "staff_redeem")).text
    )
    await olga.send(f"/redeem {code}")
    assert "уже" in (await reply_of(olga, "staff_redeem")).text

    # 6. Anna shares her link; Boris joins through it with a phone of his own
    await anna.send("/card")
    with_link = await reply_of(anna, "loyalty_card")
    share = with_link.button("Поделиться")["url"]
    link = parse_qs(urlparse(share).query)["url"][0]
    assert link in with_link.text and "?start=ref_" in link
    payload = link.split("start=")[1]
    await anna.quiet()
    boris = telegram.user(5002, "Борис", username="boris")
    joined = await join(boris, "79161230002", start=f"/start {payload}")
    joined = await gather(boris, "referral_bonus", "welcome_bonus", got=joined)
    assert "вам начислено 300 баллов" in joined["referral_bonus"].text
    assert "начислено 150 приветственных баллов" in joined["welcome_bonus"].text  # his own too
    boris_id = await customer_id_of(wallet_bot.db, 5002)
    assert "Баллов: <b>450</b>" in await card(boris)
    await olga.send("/referrals")
    assert f"Анна (#{anna_id}): пришли 1 · купили 0" in (await olga.reply()).text
    # no reward before Boris buys: nothing in Anna's chat, nothing in her card
    await anna.quiet()
    assert "Баллов: <b>400</b>" in await card(anna)
    assert not [call for call in telegram.sent_to(5001) if call.template == "referral_reward"]

    await sale(olga, f"/sale #{boris_id} 2000 педикюр")
    told = await reply_of(anna, "referral_reward")
    assert "Вам начислено 500 баллов" in told.text
    assert "Баллов: <b>900</b>" in await card(anna)
    await sale(olga, f"/sale #{boris_id} 1000 педикюр")  # his second purchase: no second reward
    await anna.quiet()
    assert "Баллов: <b>900</b>" in await card(anna)

    # 7. a certificate, forwarded: Vera opens it first and claims it, Gleb is told it is taken
    await olga.send("/gift 3000")
    issued = await reply_of(olga, "gift_issued")
    gift = issued.text.split("?start=")[1].split()[0].split("<")[0]
    gift_code = gift.removeprefix("gift_")
    vera = telegram.user(5003, "Вера")  # new to us: the certificate is hers once she consents
    claimed = (
        await gather(vera, "welcome_bonus", got=await join(vera, "79161230003", f"/start {gift}"))
    )["gift_claim"]
    assert "теперь ваш" in claimed.text and f"<code>{gift_code}</code>" in claimed.text
    assert f"3{NBSP}000{NBSP}₽" in claimed.text
    gleb = telegram.user(5004, "Глеб")
    await gather(gleb, "welcome_bonus", got=await join(gleb, "79161230004"))
    await gleb.quiet()
    await gleb.send(f"/start {gift}")
    refused = await reply_of(gleb, "gift_claim")
    assert "уже получил другой человек" in refused.text and gift_code not in refused.text

    # staff spend it in two parts; the rest is right, and a part above it is refused
    await olga.send(f"/redeem {gift_code} 1200")
    first_part = await reply_of(olga, "staff_certificate")
    assert f"списано 1{NBSP}200{NBSP}₽, осталось 1{NBSP}800{NBSP}₽" in first_part.text
    await olga.send(f"/redeem {gift_code} 1000")
    second_part = await reply_of(olga, "staff_certificate")
    assert f"списано 1{NBSP}000{NBSP}₽, осталось 800{NBSP}₽" in second_part.text
    await olga.send(f"/redeem {gift_code} 900")
    assert "ничего не списано" in (await olga.reply()).text
    vera_card = await card(vera)
    assert f"🎁 Сертификат <code>{gift_code}</code>: осталось 800{NBSP}₽ из 3{NBSP}000{NBSP}₽" in (
        vera_card
    )
    assert "01.12.2026 · +150 · приветственный бонус" in vera_card
    assert gift_code not in await card(gleb)

    # 8. a prepaid package: staff sell it, the next manicure uses it, /card shows what is left
    sold = await sale(olga, f"/sale #{anna_id} package:nails5")
    assert "Продан абонемент «nails5»: 5 × Маникюр с покрытием" in sold.text
    sold = await sale(olga, f"/sale #{anna_id} 2000 маникюр")
    assert "Оплачено абонементом «nails5», осталось 4 из 5" in sold.text
    assert not any("Оплатить баллами" in text for text in sold.button_texts)
    final = await card(anna)
    assert "🎟 Абонемент «nails5» (Маникюр с покрытием): осталось 4 из 5 визитов" in final
    assert "Баллов: <b>1" + NBSP + "700</b>" in final  # 900 + 10 % of the package's 8 000
    assert "01.12.2026 · +500 · за приведённого друга" in final
