"""Customers imported from the owner's previous base, end to end: recognised by their phone when
they join ("glad to see you again"), their history theirs from that moment (a due-offer or a
wake-up at the first tick, if they agreed to offers), the welcome coupon by the business file's
rule, a phone of someone already in Telegram not taken over, and the staff's view of them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.models import Customer, OutboxMessage, Purchase
from tests.conftest import BUSINESS_FILE, RunningBot, make_settings
from tests.e2e.helpers import answer_offers, consent, count, customer_of, onboard, tap
from tests.telegram_server import Call, Person, TelegramServer
from tests.unit.test_merge import imported

PHONE = "+79161234567"
CYCLE = (25, 46, 67)  # three manicures 21 days apart, the last 25 days ago: due 4 days ago


async def _join(person: Person, phone: str = PHONE, *, offers: bool = True) -> tuple[Call, Call]:
    """An imported customer with a birthday on file joins: consent, their contact (recognised),
    the name the business knew, offers. Returns the recognition and the welcome message."""
    await consent(person)
    await person.send_contact(phone.removeprefix("+"))
    recognised = await person.reply(timeout=30)  # a machine running many suites can be slow
    ask_name = await person.reply()
    assert ask_name.template == "ask_name", "the birthday on file is not asked again"
    await tap(person, ask_name, "Анна Петрова")
    return recognised, await answer_offers(person, await person.reply(), offers)


async def test_recognised_and_offered_at_the_first_tick(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    old = await imported(carebot.db, carebot.clock.now(), visits_days_ago=CYCLE)
    anna = telegram.user(6001)
    recognised, welcome = await _join(anna)
    assert recognised.template == "phone_recognised"
    assert recognised.text.startswith("Анна Петрова, рады видеть вас снова!")
    assert "у нас 3 ваших визита" in recognised.text and "записан: 14.03" in recognised.text
    assert recognised.markup == {"remove_keyboard": True}
    assert welcome.template == "welcome_coupon"  # for_known_customers: true by default
    customer = await customer_of(carebot.db, 6001)
    assert customer is not None and customer.id == old and customer.onboarded_at is not None
    assert await count(carebot.db, Customer) == 1
    assert carebot.app is not None
    result = await carebot.app.tick()
    assert result["due_offers"] == 1 and result["reactivation"] == 0
    offer = await anna.reply(timeout=15)
    assert "подходит время для «Маникюр с покрытием»" in offer.text


async def test_no_offer_without_the_consent_to_offers(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    await imported(carebot.db, carebot.clock.now(), visits_days_ago=CYCLE)
    anna = telegram.user(6001)
    await _join(anna, offers=False)
    assert carebot.app is not None
    assert (await carebot.app.tick())["due_offers"] == 0
    await anna.quiet()


async def test_a_sleeping_customer_is_woken_and_one_not_in_telegram_only_counted(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    await imported(carebot.db, carebot.clock.now(), visits_days_ago=(50, 71, 92))
    absent = await imported(
        carebot.db, carebot.clock.now(), "+79035550000", name="Вера", visits_days_ago=(60, 81)
    )
    anna = telegram.user(6001)
    await _join(anna)
    assert carebot.app is not None
    result = await carebot.app.tick()
    assert result["reactivation"] == 1 and result["due_offers"] == 0
    wake = await anna.reply(timeout=15)
    assert "Давно вас не видели" in wake.text
    await olga.send("/sleeping")
    assert "Спят сейчас: 2\nНаписали им: 1" in (await olga.reply()).text
    assert await count(carebot.db, OutboxMessage, OutboxMessage.customer_id == absent) == 0


async def test_the_welcome_coupon_follows_the_business_rule(
    telegram: TelegramServer, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    business = tmp_path / "business.toml"
    business.write_text(
        BUSINESS_FILE.read_text().replace(
            "[coupons.welcome]", "[coupons.welcome]\nfor_known_customers = false", 1
        )
    )
    running = RunningBot(
        make_settings(telegram, database_url, business_file=business), clock, telegram
    )
    await running.start()
    try:
        await imported(running.db, clock.now(), visits_days_ago=CYCLE)
        _, welcome = await _join(telegram.user(6001))
        assert welcome.template == "welcome_known" and "<code>" not in welcome.text
        newcomer = await onboard(telegram.user(6002), phone="79031112233")
        assert newcomer.template == "welcome_coupon"
    finally:
        await running.stop()


async def test_no_birthday_on_file_is_asked_and_a_linked_phone_is_not_taken_over(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    old = await imported(carebot.db, carebot.clock.now(), name=None, birthday=None)
    anna = telegram.user(6001)
    welcome = await onboard(anna)  # the usual steps: the birthday question comes
    assert welcome.template == "welcome_coupon"
    customer = await customer_of(carebot.db, 6001)
    assert customer and customer.id == old and customer.name == "Анна"
    assert (customer.birth_day, customer.birth_month) == (14, 3)
    # another account with the same phone: saved on it as before, the history stays Анна's
    boris = telegram.user(6002, "Борис")
    await consent(boris)
    await boris.send_contact(PHONE.removeprefix("+"))
    assert (await boris.reply()).template == "phone_saved"
    assert (await boris.reply()).template == "ask_birthday"
    other = await customer_of(carebot.db, 6002)
    assert other and other.id != old and other.imported_at is None
    assert await count(carebot.db, Purchase, Purchase.customer_id == old) == 3


async def test_staff_find_an_imported_customer_and_record_a_sale(
    carebot: RunningBot, telegram: TelegramServer, olga: Person
) -> None:
    old = await imported(carebot.db, carebot.clock.now(), visits_days_ago=CYCLE)
    await olga.send("/find петрова")
    card = await olga.reply()
    assert f"<b>Анна Петрова</b> · {PHONE} · #{old}" in card.text
    assert "Визитов: 3, последний 29.10.2026" in card.text
    assert "Из прежней базы, в Telegram ещё не заходил(а)" in card.text
    await olga.press(card, "История")
    history = await olga.reply()
    assert "29.10.2026 · из прежней базы · визит 2\u00a0000\u00a0₽, Маникюр с покрытием, Анна" in (
        history.text
    )
    await olga.send("/sale +7 916 123 45 67 2000 маникюр Анна")
    done = await olga.reply()
    assert "✅ Продажа записана: Анна Петрова" in done.text and "Визитов теперь: 4" in done.text
    async with carebot.db.reading() as repos:
        customer = (await repos.session.scalars(select(Customer))).one()
        assert customer.tg_user_id is None
    # once they join, the card no longer says they are not in Telegram
    await _join(telegram.user(6001))
    await olga.send(f"/find #{old}")
    assert "Из прежней базы" not in (await olga.reply()).text
