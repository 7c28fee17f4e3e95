"""The issue's "done when": the YCLIENTS-shaped sample (data/examples) is imported into a running
bot, and the next tick works from that history: the customers it knew are sleeping or due by their
own rhythm, nobody still outside Telegram is written to, and one of them who joins by phone gets
the due-offer the history says they are owed."""

from __future__ import annotations

from importlib import resources

from sqlalchemy import func, select

from bot.db.models import Customer, Cycle, OutboxMessage
from bot.services.importing import ImportService, Kind
from tests.conftest import RunningBot
from tests.e2e.helpers import answer_offers, consent, tap
from tests.telegram_server import TelegramServer


async def _import_sample(bot: RunningBot) -> None:
    app = bot.app
    assert app is not None
    importer = ImportService(app.db, app.clock, app.business, app.settings.tz)
    for name, kind in (
        ("yclients_customers.csv", Kind.CUSTOMERS),
        ("yclients_visits.csv", Kind.VISITS),
    ):
        with (resources.files("bot.data") / "examples" / name).open("rb") as stream:
            report = await importer.run(stream, kind, apply=True)
        assert report.accepted > 0


async def test_the_sample_base_is_due_and_asleep_at_the_first_tick(
    carebot: RunningBot, telegram: TelegramServer
) -> None:
    await _import_sample(carebot)
    assert carebot.app is not None
    await carebot.app.tick()
    now = carebot.clock.now()
    async with carebot.db.reading() as repos:
        learned = await repos.session.scalar(select(func.count()).select_from(Cycle))
        asleep = await repos.session.scalar(
            select(func.count(func.distinct(Cycle.customer_id))).where(Cycle.sleeps_at <= now)
        )
        written = await repos.session.scalar(select(func.count()).select_from(OutboxMessage))
        # someone whose offer moment came (before their next visit is due), not yet asleep
        due = (
            await repos.session.execute(
                select(Customer.phone, Customer.name)
                .join(Cycle, Cycle.customer_id == Customer.id)
                .where(Cycle.offer_at <= now, Cycle.sleeps_at > now, Customer.phone.is_not(None))
                .order_by(Customer.id)
                .limit(1)
            )
        ).one()
    assert learned and learned > 100, "cycles learned from the imported visits"
    assert asleep and asleep > 10, "sleeping customers found by their own rhythm"
    assert written == 0, "nobody outside Telegram is written to"

    person = telegram.user(7001)
    await consent(person)
    await person.send_contact(due.phone.removeprefix("+"))
    recognised = await person.reply(timeout=30)
    assert recognised.template == "phone_recognised"
    step = await person.reply()
    if step.template == "ask_birthday":
        await tap(person, step, "Пропустить")
        step = await person.reply()
    assert step.template == "ask_name"
    await person.send("Гостья")
    await answer_offers(person, await person.reply(), True)
    result = await carebot.app.tick()
    assert result["due_offers"] == 1
    offer = await person.reply(timeout=15)
    assert offer.template == "due_offer"
