"""Buttons as the core means them: what pressing one asks for (an *intent*), in the business's
words, and the text on it. No Telegram here: services return keyboards of these, an outbox row
stores them as JSON (`dump`/`load`), and the Telegram edge (`handlers/keyboards.py`) turns them
into inline keyboards with its callback-data factories when the message is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, get_type_hints


class BookingAct(StrEnum):
    """What a button does to one booking: its master's or the staff's answer and the visit's end,
    or its customer's confirm / move / cancel."""

    ACCEPT = "accept"
    DECLINE = "decline"  # asks the master for a reason first
    DECLINE_NOW = "decline_now"  # declines without a reason
    DONE = "done"
    NO_SHOW = "no_show"
    CONFIRM = "confirm"
    CANCEL = "cancel"  # asks the customer to confirm
    CANCEL_YES = "cancel_yes"
    KEEP = "keep"
    RESCHEDULE = "reschedule"
    STAFF_CANCEL = "staff_cancel"  # the staff cancel a visit ahead (late inside the cancel window)
    REFUND_DEPOSIT = "refund_deposit"  # the staff refund a kept deposit after all (by hand)


class Intent:
    """What a button asks for. Every kind has a short `kind` name, its key in stored JSON."""

    kind: ClassVar[str]


@dataclass(frozen=True)
class BookSlot(Intent):
    """Book this free time; `ask_first` shows a confirmation instead (the booking menu), and
    `replaces` is a booking moved to this time."""

    kind: ClassVar[str] = "slot"
    service: str
    master: str
    at: datetime
    replaces: int = 0
    ask_first: bool = False


@dataclass(frozen=True)
class BookService(Intent):
    """Choose a master, a day and a time for this service ("another time", "book again")."""

    kind: ClassVar[str] = "book_service"
    service: str
    replaces: int = 0


@dataclass(frozen=True)
class OpenBooking(Intent):
    """Open the booking menu in a new message (under a broadcast or a wake-up message)."""

    kind: ClassVar[str] = "open_booking"


@dataclass(frozen=True)
class BookingAction(Intent):
    kind: ClassVar[str] = "booking"
    action: BookingAct
    id: int


@dataclass(frozen=True)
class PostponeCycle(Intent):
    """Not now: the due-offer for this service waits for the next cycle (of this `round`: a
    second tap, or an old offer, changes nothing)."""

    kind: ClassVar[str] = "postpone"
    service: str
    round: int


@dataclass(frozen=True)
class Unsubscribe(Intent):
    """No more marketing messages: the same as /stop. Every offer ends with it (the sender adds
    it when a composer has not)."""

    kind: ClassVar[str] = "unsubscribe"


@dataclass(frozen=True)
class BroadcastReport(Intent):
    """Refresh a broadcast's report in the admin chat."""

    kind: ClassVar[str] = "broadcast_report"
    id: int


@dataclass(frozen=True)
class StopBroadcast(Intent):
    kind: ClassVar[str] = "stop_broadcast"
    id: int


@dataclass(frozen=True)
class ShowCoupons(Intent):
    """The customer's coupons."""

    kind: ClassVar[str] = "coupons"


@dataclass(frozen=True)
class SurveyScore(Intent):
    kind: ClassVar[str] = "survey_score"
    survey_id: int
    score: int


@dataclass(frozen=True)
class AnswerPoints(Intent):
    """The customer's answer to paying part of a sale with points: `confirm` spends them."""

    kind: ClassVar[str] = "points_answer"
    request_id: int
    confirm: bool


@dataclass(frozen=True)
class TakeWaitlistOffer(Intent):
    """Book the freed time this waitlist offer is for (the first to tap gets it)."""

    kind: ClassVar[str] = "waitlist_take"
    offer_id: int


@dataclass(frozen=True)
class OpenUrl(Intent):
    """A link (an owner's button under a broadcast)."""

    kind: ClassVar[str] = "url"
    url: str


INTENTS: dict[str, type[Intent]] = {
    cls.kind: cls
    for cls in (
        BookSlot,
        BookService,
        OpenBooking,
        BookingAction,
        PostponeCycle,
        Unsubscribe,
        BroadcastReport,
        StopBroadcast,
        ShowCoupons,
        SurveyScore,
        AnswerPoints,
        OpenUrl,
        TakeWaitlistOffer,
    )
}


@dataclass(frozen=True)
class Button:
    text: str
    intent: Intent


Keyboard = Sequence[Sequence[Button]]
"""Rows of buttons, top to bottom."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


def _fields(cls: type[Intent]) -> tuple[tuple[str, Any], ...]:
    """Each field's name and type (resolved once: `get_type_hints` costs ~100 µs a call)."""
    if cls not in _FIELDS:
        hints = get_type_hints(cls)
        _FIELDS[cls] = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return _FIELDS[cls]


_FIELDS: dict[type[Intent], tuple[tuple[str, Any], ...]] = {}


def dump(keyboard: Keyboard | None) -> dict[str, Any] | None:
    """The JSON an outbox row stores: `{"buttons": [[{"text": …, "intent": kind, **fields}]]}`;
    None for no buttons."""
    if not keyboard:
        return None
    return {
        "buttons": [
            [
                {
                    "text": button.text,
                    "intent": button.intent.kind,
                    **{
                        name: _plain(getattr(button.intent, name))
                        for name, _ in _fields(type(button.intent))
                    },
                }
                for button in row
            ]
            for row in keyboard
        ]
    }


def _intent(data: dict[str, Any]) -> Intent:
    cls = INTENTS[data["intent"]]
    values: dict[str, Any] = {}
    for name, hint in _fields(cls):
        if name not in data:
            continue
        value = data[name]
        if hint is datetime:
            value = datetime.fromisoformat(value)
        elif isinstance(hint, type) and issubclass(hint, StrEnum):
            value = hint(value)
        values[name] = value
    return cls(**values)


def load(stored: dict[str, Any]) -> list[list[Button]]:
    """The keyboard `dump` stored. (Rows written before intents existed store Telegram's own
    `{"inline_keyboard": …}`: the edge sends those as they are, they never come here.)"""
    return [[Button(item["text"], _intent(item)) for item in row] for row in stored["buttons"]]


def is_intents(stored: dict[str, Any]) -> bool:
    """Whether stored markup is buttons with intents (else: Telegram's JSON of an older row)."""
    return "buttons" in stored
