"""`carebot demo --seed`: a dozen customers with months of visits, so /stats, /sleeping, the
segments of /broadcast and the due-offers have something to show from the first minute.

The history is written through the same services the handlers call (the customer's consents,
phone and birthday, staff's /sale), in the order it happened, with the demo's clock set to each
moment in turn: the clock starts months back and only goes forward, so every planner, coupon and
statistic sees a history that could have happened. Each customer is a person of the demo with a
chat of their own, so what the bot then sends them shows on the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.business import Business, Service
from bot.demo.world import OWNER_ID, DemoCustomer
from bot.services.birthdays import Birthday
from bot.services.staff import Staff

if TYPE_CHECKING:
    from bot.demo.run import Demo

log = logging.getLogger("carebot.demo")

SEED_DAYS = 240  # the history starts this long before the demo's first now


@dataclass(frozen=True)
class Profile:
    """One seeded customer: how often they came, how many times, and how long ago the last."""

    name: str
    lang: str
    every_days: int  # their own rhythm
    visits: int
    last_days_ago: int  # the last visit, this many days before the demo's first now
    service: int = 0  # which of the business's services (by position, wrapped)
    birthday_in_days: int | None = None  # a birthday this many days after the first now


PROFILES = (
    Profile("Елена", "ru", 21, 8, 9),
    Profile("Ирина", "ru", 28, 6, 14),
    Profile("Светлана", "ru", 21, 7, 18),  # her cycle comes due now: a due-offer with free slots
    Profile("Kate", "en", 30, 4, 26),  # due too, in English
    Profile("Наталья", "ru", 21, 5, 95),  # stopped coming: sleeping
    Profile("Татьяна", "ru", 28, 4, 130),  # sleeping
    Profile("Юлия", "ru", 35, 3, 160, service=1),  # sleeping, another service
    Profile("Дарья", "ru", 0, 1, 40),  # came once
    Profile("Alice", "en", 0, 1, 65, service=1),  # came once
    Profile("Ксения", "ru", 14, 9, 4, service=1),
    Profile("Марина", "ru", 24, 3, 3, birthday_in_days=2),  # a birthday the day after tomorrow
    Profile("Полина", "ru", 0, 0, 0),  # joined, never bought yet
)


@dataclass(frozen=True)
class Step:
    at: datetime
    customer: DemoCustomer
    profile: Profile
    visit: bool  # False: the customer joins (consents, phone, birthday, welcome coupon)


def steps(customers: list[tuple[DemoCustomer, Profile]], start: datetime) -> list[Step]:
    """Every join and visit, oldest first; visits at working hours (12:00 to 17:00 local)."""
    planned: list[Step] = []
    for number, (customer, profile) in enumerate(customers):
        hour = timedelta(hours=number % 6, minutes=5 * number)
        visits = [
            start - timedelta(days=profile.last_days_ago + k * profile.every_days) + hour
            for k in range(profile.visits)
        ]
        first = min(visits) if visits else start - timedelta(days=30 + number)
        planned.append(Step(first - timedelta(minutes=30), customer, profile, visit=False))
        planned.extend(Step(at, customer, profile, visit=True) for at in visits)
    return sorted(planned, key=lambda s: s.at)


def _service(business: Business, profile: Profile) -> Service | None:
    if not business.services:
        return None
    return business.services[profile.service % len(business.services)]


async def seed(demo: Demo, start: datetime) -> None:
    """Write the history (the demo's clock stands SEED_DAYS before `start` and is left there)."""
    app, world = demo.app, demo.world
    business = app.business
    staff = Staff(OWNER_ID, world.staff.first_name)
    customers = [(world.add_customer(p.name, p.lang, save=False), p) for p in PROFILES]
    midday = start.astimezone(demo.tz).replace(hour=13, minute=0, second=0, microsecond=0)
    for step in steps(customers, midday):
        if step.at >= start:
            continue
        if step.at > demo.clock.now():  # two steps at one moment: the clock went on a little
            demo.clock.move_to(step.at)
        tg_id = step.customer.id
        if not step.visit:
            await app.customers.consent(
                tg_id,
                name=step.customer.name,
                username=None,
                language=step.customer.lang,
                source=None,
                offers=True,
            )
            await app.customers.set_phone(tg_id, step.customer.phone)
            await app.customers.set_birthday(tg_id, _birthday(step, start, demo))
            await app.customers.finish_onboarding(tg_id)
            continue
        service = _service(business, step.profile)
        row = await app.customers.find(tg_id)
        assert row is not None
        masters = (service.masters if service else []) or [m.id for m in business.masters]
        master = masters[step.at.day % len(masters)] if masters else None
        price = service.price if service else 1500
        await app.staff.record_sale(
            staff, row.id, price * 100, service.id if service else None, master
        )
    world.save()
    world.hub.publish({"type": "customers", "customers": world.customer_list()})
    log.info("seeded %d customers with their visits", len(customers))


def _birthday(step: Step, start: datetime, demo: Demo) -> Birthday:
    if step.profile.birthday_in_days is not None:
        day = (start + timedelta(days=step.profile.birthday_in_days)).astimezone(demo.tz)
        return Birthday(day.day, day.month, 1992)
    born = start - timedelta(days=37 * (len(step.customer.name) + step.customer.id % 9))
    return Birthday(born.day, born.month, 1985 + step.customer.id % 15)
