"""Every button's callback data: the factories that pack it and the handlers' filters unpack.

What a factory's `action` or `step` may be is a `StrEnum`: data with any other value (an old
or forged button) does not unpack, no handler's filter matches, and the fallback answers it
as stale. So do numbers outside `Number` and slot times no slot can have (`from_minutes`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from bot.buttons import BookingAct
from bot.services.importing import Kind as ImportKind
from bot.services.waitlist import DayPart

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


def day_code(day: date) -> int:
    """A day as yyyymmdd: a Number for button data."""
    return day.year * 10000 + day.month * 100 + day.day


def day_of(code: int) -> date | None:
    """The day of a yyyymmdd from button data; None for a forged one (no such day)."""
    try:
        return date(code // 10000, code // 100 % 100, code % 100)
    except (ValueError, OverflowError):
        return None


# ---- booking ------------------------------------------------------------------------------------


class SlotAct(StrEnum):
    PICK = "pick"  # the menu: asks to confirm
    BOOK = "book"  # confirmed: books at once
    OFFER = "offer"  # a slot in a due-offer or after a decline: books at once


class SlotCallback(CallbackData, prefix="slot"):
    """A free time."""

    action: SlotAct
    service: str
    master: str
    at: Number  # minutes since the epoch
    replaces: Number = 0  # a booking moved to this time (reschedule)


class BookStep(StrEnum):
    SERVICES = "services"
    MASTERS = "masters"
    DAYS = "days"
    TIMES = "times"


class BookMenu(CallbackData, prefix="bk"):
    """The customer's own booking: service → master (or any) → day → time."""

    step: BookStep
    service: str = ""
    master: str = ""  # "" = any master
    day: Number = 0  # yyyymmdd
    replaces: Number = 0


class BookingCallback(CallbackData, prefix="booking"):
    """An action on one booking, by its master, the staff, or its customer."""

    action: BookingAct
    id: Number


class CycleAct(StrEnum):
    LATER = "later"


class CycleCallback(CallbackData, prefix="cycle"):
    """The customer's answer to a due-offer: not now (postpone to the next cycle)."""

    action: CycleAct
    service: str
    round: Number  # the cycle's round the offer was for: a second tap, or an old offer, changes nothing


# ---- menu, coupons, profile, onboarding ---------------------------------------------------------


class MenuAct(StrEnum):
    BOOK = "book"
    COUPONS = "coupons"
    PROFILE = "profile"


class MenuCallback(CallbackData, prefix="menu"):
    action: MenuAct


class CouponCallback(CallbackData, prefix="coupon"):
    id: Number


class ForgetCallback(CallbackData, prefix="forget"):
    confirm: bool


class OnboardingAct(StrEnum):
    CONSENT = "consent"
    PRIVACY = "privacy"
    SKIP_BIRTHDAY = "skip_birthday"
    KEEP_NAME = "keep_name"
    OFFERS_YES = "offers_yes"  # the separate consent to offers, at the end of onboarding
    OFFERS_NO = "offers_no"
    RECONSENT = "reconsent"  # agreed to a new version of the privacy text


class OnboardingCallback(CallbackData, prefix="onb"):
    action: OnboardingAct


# ---- surveys ------------------------------------------------------------------------------------


class SurveyCallback(CallbackData, prefix="survey"):
    id: Number
    score: Number


class SurveySkip(CallbackData, prefix="survey_skip"):
    id: Number


class ComplaintAct(StrEnum):
    RESOLVE = "resolve"
    ANSWER = "answer"


class ComplaintCallback(CallbackData, prefix="complaint"):
    action: ComplaintAct
    id: Number


# ---- broadcasts ---------------------------------------------------------------------------------


class UnsubscribeCallback(CallbackData, prefix="unsub"):
    """The "unsubscribe" button under every offer (added when it is sent: bot/outbox/compose.py):
    the same as /stop, in one tap."""


class BookFromBroadcast(CallbackData, prefix="bcbook"):
    """A broadcast's "book now" button: opens the booking menu in a new message."""


class BroadcastAct(StrEnum):
    CANCEL = "cancel"
    REPORT = "report"


class BroadcastAction(CallbackData, prefix="bc"):
    """The admin chat's buttons on one broadcast: cancel it, refresh its report."""

    action: BroadcastAct
    id: Number


class WizardAct(StrEnum):
    BOOK = "book"
    NO_BUTTONS = "no_buttons"
    NO_COUPON = "no_coupon"
    SEG = "seg"
    PICK = "pick"
    DONE = "done"
    SEND = "send"
    SCHEDULE = "schedule"
    CANCEL = "cancel"
    BACK = "back"


class WizardCallback(CallbackData, prefix="bw"):
    action: WizardAct
    value: str = ""


# ---- staff --------------------------------------------------------------------------------------


class CardAct(StrEnum):
    SHOW = "show"
    SALE = "sale"
    REDEEM = "redeem"
    NOTE = "note"
    HISTORY = "history"
    DEPOSIT = "deposit"  # mark or unmark "only with deposit" (handlers/deposits.py)


class CardCallback(CallbackData, prefix="card"):
    action: CardAct
    customer_id: Number


class RedeemCallback(CallbackData, prefix="rdm"):
    code: str
    customer_id: Number


class SaleStep(StrEnum):
    SERVICE = "service"
    MASTER = "master"
    CANCEL = "cancel"


class SaleCallback(CallbackData, prefix="sale"):
    step: SaleStep
    value: str  # a service or master id, or "-" for none


# ---- paying with points ------------------------------------------------------------------------


class PayPoints(CallbackData, prefix="ppay"):
    """ "Pay with points" under /sale's answer (admin chat): asks the sale's customer."""

    purchase_id: Number


class PointsAct(StrEnum):
    CONFIRM = "yes"
    DECLINE = "no"


class PointsAnswerCallback(CallbackData, prefix="ppa"):
    """The customer's Confirm / Decline under the request to pay with points."""

    action: PointsAct
    id: Number


# ---- import (admin chat) ------------------------------------------------------------------------


class ImportAct(StrEnum):
    APPLY = "apply"  # write the file the report (a reply to it) was made from


class ImportCallback(CallbackData, prefix="imp"):
    """Under an import's dry-run report, which replies to the staff member's CSV document."""

    action: ImportAct
    kind: ImportKind


# ---- the owner's numbers (admin chat) -----------------------------------------------------------


class CampaignName(StrEnum):
    """The automatic campaigns that can run two variants (a broadcast is a one-off)."""

    BIRTHDAY = "birthday"
    HOLIDAY = "holiday"
    THANKS = "thanks"
    EXPIRY = "expiry"
    DUE_OFFER = "due_offer"
    REACTIVATION = "reactivation"


class WinnerArm(StrEnum):
    A = "a"
    B = "b"


class CampaignWinnerCallback(CallbackData, prefix="cwin"):
    """ "Make B the default" under `/stats campaigns`: the campaign, the better variant, and the
    period whose figures showed it (yyyymmdd; checked again when it is tapped)."""

    campaign: CampaignName
    arm: WinnerArm
    first: Number
    last: Number


# ---- the waitlist -------------------------------------------------------------------------------


class WaitStep(StrEnum):
    SERVICES = "s"
    MASTERS = "m"
    DAYS = "d"
    TIME = "t"
    JOIN = "j"
    LIST = "l"


class WaitMenu(CallbackData, prefix="wl"):
    """Joining the waitlist: service → master (or any) → days → time of day → join; and the list.
    Everything travels in the data and is checked again when joining."""

    step: WaitStep
    service: str = ""
    master: str = ""  # "" = any master
    first: Number = 0  # yyyymmdd
    last: Number = 0  # yyyymmdd
    part: DayPart = DayPart.ANY


class WaitAct(StrEnum):
    LEAVE = "leave"  # leave one entry
    TAKE = "take"  # book the freed time an offer is for


class WaitlistCallback(CallbackData, prefix="wla"):
    action: WaitAct
    id: Number


# ---- cancelling a sale (admin chat) -----------------------------------------------------------


class UnsaleAct(StrEnum):
    ASK = "ask"  # "Cancel sale" under /sale's answer: asks to confirm
    YES = "yes"  # confirmed: cancels
    NO = "no"  # kept


class UnsaleCallback(CallbackData, prefix="unsale"):
    action: UnsaleAct
    purchase_id: Number
