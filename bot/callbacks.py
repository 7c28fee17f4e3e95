"""Callback data of the booking buttons. They live here, not in `handlers/`, because some of
these buttons are packed by services onto outbox rows (a due-offer's slots, a master's
accept/decline) and sent later; the handlers unpack the same factories."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

# A number in button data: an id, minutes since the epoch, a yyyymmdd day; all fit in 31 bits.
# Forged data with any other number does not unpack, so the button is answered as stale (and no
# query meets a number the database cannot hold).
Number = Annotated[int, Field(ge=0, lt=2**31)]


def to_minutes(moment: datetime) -> int:
    """A slot's start as whole minutes since the epoch: short enough for button data."""
    return int(moment.timestamp()) // 60


# Button data can be forged: a start outside these bounds is not a slot the bot ever offered.
_LAST_MINUTE = to_minutes(datetime(3000, 1, 1, tzinfo=UTC))


def from_minutes(minutes: int) -> datetime | None:
    """The slot's start; None for a time no slot can have (before 1970, after 2999)."""
    if not 0 <= minutes < _LAST_MINUTE:
        return None
    return datetime.fromtimestamp(minutes * 60, UTC)


class SlotCallback(CallbackData, prefix="slot"):
    """A free time: `pick` asks to confirm (the menu); `book` (confirmed) and `offer` (a slot in
    a due-offer or after a decline) book at once."""

    action: str  # "pick" | "book" | "offer"
    service: str
    master: str
    at: Number  # minutes since the epoch
    replaces: Number = 0  # a booking moved to this time (reschedule)


class BookMenu(CallbackData, prefix="bk"):
    """The customer's own booking: service → master (or any) → day → time."""

    step: str  # "services" | "masters" | "days" | "times"
    service: str = ""
    master: str = ""  # "" = any master
    day: Number = 0  # yyyymmdd
    replaces: Number = 0


class BookingCallback(CallbackData, prefix="booking"):
    """An action on one booking, by its master, the staff, or its customer."""

    action: str  # accept | decline | done | no_show | confirm | cancel | cancel_yes | keep | reschedule
    id: Number


class CycleCallback(CallbackData, prefix="cycle"):
    """The customer's answer to a due-offer: not now (postpone to the next cycle)."""

    action: str  # "later"
    service: str
    round: Number  # the cycle's round the offer was for: a second tap, or an old offer, changes nothing


class Unsubscribe(CallbackData, prefix="unsub"):
    """The "unsubscribe" button under every broadcast: the same as /stop."""


class BookFromBroadcast(CallbackData, prefix="bcbook"):
    """A broadcast's "book now" button: opens the booking menu in a new message."""


class BroadcastAction(CallbackData, prefix="bc"):
    """The admin chat's buttons on one broadcast: cancel it, refresh its report."""

    action: str  # "cancel" | "report"
    id: Number
