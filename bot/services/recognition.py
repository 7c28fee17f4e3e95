"""A customer the business already knew, recognised by their phone when they join in Telegram.

Customers imported from the owner's previous base have no Telegram account. When one of them
consents in Telegram (a new row with their account) and shares their own contact with the same
phone, the two rows are one person: the new row's account, username, language and the consents
they gave in Telegram move onto the imported row (whose visits, notes and coupons stay where
they are), and the new row goes, all in the transaction that saves the phone. From then on the
imported history is theirs: cycles, sleeping and segments see it at the next planner run.

The direction keeps the imported row because its id is in the import's visit keys
(`purchases.import_key`): a second import of the same file still recognises every visit. The new
row holds only what was made since the consent button a minute ago.

A phone that belongs to a customer with another Telegram account is not merged: it is saved on
this account as before (the welcome coupon's phone fingerprint then tells them it was given).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.db.models import Customer
from bot.db.repositories import Repos
from bot.events import Credited
from bot.services.birthdays import Birthday

log = logging.getLogger("carebot")


@dataclass(frozen=True)
class PhoneSaved:
    """The phone step's outcome: `recognised` when the business knew them before (the bot says
    "glad to see you again"), with the name and birthday it already has."""

    recognised: bool
    name: str | None = None
    birthday: Birthday | None = None
    visits: int = 0
    credited: tuple[Credited, ...] = ()  # what joining earned (`PhoneShared`'s subscribers)


async def account_row(repos: Repos, tg_user_id: int) -> Customer | None:
    """The customer of this account, locked. Read twice at most: on PostgreSQL a second tap that
    waited for the first one's merge finds its row deleted, and a new statement sees the merged
    row the account now belongs to."""
    customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
    if customer is None:
        customer = await repos.customers.by_tg_user(tg_user_id, for_update=True)
    return customer


def _take_over(imported: Customer, joined: Customer) -> dict[str, object]:
    """What of the new row the imported one takes: the account and what the person chose in
    Telegram (language, their consents' state); the name and birthday the business knew win,
    the Telegram name and a deep link's source only fill a gap."""
    return {
        "tg_user_id": joined.tg_user_id,
        "username": joined.username,
        "language": joined.language,
        "name": imported.name or joined.name,
        "name_folded": imported.name_folded if imported.name else joined.name_folded,
        "birth_day": imported.birth_day if imported.birth_month else joined.birth_day,
        "birth_month": imported.birth_month or joined.birth_month,
        "birth_year": imported.birth_year if imported.birth_month else joined.birth_year,
        "source": joined.source or imported.source,
        "marketing_opt_out": joined.marketing_opt_out,
        "data_consent_version": joined.data_consent_version,
        "onboarded_at": joined.onboarded_at,
        "blocked_at": joined.blocked_at,
    }


async def save_phone(repos: Repos, customer: Customer, phone: str) -> tuple[Customer, PhoneSaved]:
    """Save the customer's own phone; an imported customer with this phone and no account
    becomes this person (their row is the one kept: returned). Inside the caller's transaction."""
    if customer.imported_at is None:
        imported = await repos.merging.imported_by_phone(phone)
        if imported is not None and imported.id != customer.id:
            values = _take_over(imported, customer)
            await repos.merging.move_everything(customer, imported)  # frees the account
            for name, value in values.items():
                setattr(imported, name, value)
            # Their rhythm starts again from now: learned afresh from the visits at the next
            # planner run, so one overdue is offered then (not a cycle later).
            await repos.cycles.forget(imported.id)
            log.info("customer recognised by phone customer=%s merged=%s", imported.id, customer.id)
            customer = imported
    customer.phone = phone
    if customer.imported_at is None:
        return customer, PhoneSaved(recognised=False)
    visits, _, _ = await repos.purchases.summary(customer.id)
    birthday = (
        Birthday(customer.birth_day, customer.birth_month, customer.birth_year)
        if customer.birth_day and customer.birth_month
        else None
    )
    return customer, PhoneSaved(True, customer.name, birthday, visits)
