"""The business description the owner edits (`BUSINESS_FILE`, TOML), validated on start-up."""

from __future__ import annotations

import logging
import re
import tomllib
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.settings import ConfigError

_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CouponRule(_Strict):
    """What a coupon of one kind is worth and how long it lives."""

    percent: Annotated[int, Field(ge=1, le=100)] | None = None
    amount: Annotated[int, Field(gt=0)] | None = None
    valid_days: Annotated[int, Field(ge=1, le=3650)]

    @model_validator(mode="after")
    def _one_value(self) -> CouponRule:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of percent or amount")
        return self


class WelcomeRule(CouponRule):
    """The welcome coupon, and whom it is for."""

    # Someone the business already knows (visits imported from its previous base, or recorded
    # before they finished onboarding) gets it too when true: joining the bot is worth the same
    # to the business whoever joins. False: only newcomers get it.
    for_known_customers: bool = True
    # True: only a customer who agreed to offers gets it (one who said no is told they can turn
    # offers on with /resume, and gets it then, once); false: everyone who finishes onboarding.
    requires_offers_consent: bool = False


class Coupons(_Strict):
    welcome: WelcomeRule
    birthday: CouponRule | None = None  # the gift in the birthday greeting
    thanks: CouponRule | None = None  # the time-limited offer after a purchase
    reactivation: CouponRule | None = None  # the offer that wakes up a sleeping customer


class Marketing(_Strict):
    """One policy for every message the bot sends unasked (greetings, offers, reminders)."""

    quiet_hours: str = "21:00-10:00"  # in TIMEZONE; marketing waits for the morning
    per_week: Annotated[int, Field(ge=0, le=50)] = 2  # at most this many per customer in 7 days

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", value.replace(" ", ""))
        if (
            not match
            or int(match[1]) > 23
            or int(match[3]) > 23
            or int(match[2]) > 59
            or int(match[4]) > 59
        ):
            raise ValueError(f"{value!r} is not a time range like 21:00-10:00")
        return value.replace(" ", "")

    def quiet(self) -> tuple[time, time]:
        start, end = self.quiet_hours.split("-")
        return time.fromisoformat(start.zfill(5)), time.fromisoformat(end.zfill(5))


class BirthdayGreeting(_Strict):
    remind_days_before: Annotated[int, Field(ge=0, le=30)] = 0  # 0: no "your birthday is coming"


class ThanksOffer(_Strict):
    delay_hours: Annotated[float, Field(ge=0, le=24 * 14)] = 3


class Holiday(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    date: Annotated[str, Field(pattern=r"^\d{2}-\d{2}$")]  # MM-DD
    template: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
    title: str = ""  # for a template that names the holiday (the professional one)
    audience: list[str] = []  # service ids; empty: everyone who agreed to offers
    coupon: CouponRule | None = None

    @field_validator("date")
    @classmethod
    def _real_date(cls, value: str) -> str:
        month, day = map(int, value.split("-"))
        if not 1 <= month <= 12 or not 1 <= day <= (
            29 if month == 2 else 31 if month in (1, 3, 5, 7, 8, 10, 12) else 30
        ):
            raise ValueError(f"{value!r} is not a MM-DD date")
        return value


class Surveys(_Strict):
    """ "How was your visit?" after each purchase."""

    enabled: bool = True
    delay_hours: Annotated[float, Field(ge=0, le=24 * 7)] = (
        3  # never at night: it waits for the morning
    )
    closes_after_hours: Annotated[float, Field(ge=1, le=24 * 30)] = 72
    every_days: Annotated[int, Field(ge=0, le=365)] = (
        14  # at most one survey per customer per N days
    )
    marketing: bool = False  # true: /stop also stops surveys, and quiet hours and caps apply


class ReviewLink(_Strict):
    title: Annotated[str, Field(min_length=1, max_length=40)]
    url: Annotated[str, Field(pattern=r"^https?://")]


class Outbox(_Strict):
    """How fast the sender may go: Telegram allows about 30 messages/s, 1/s in one chat."""

    messages_per_second: Annotated[float, Field(gt=0, le=1000)] = 29
    seconds_per_chat: Annotated[float, Field(ge=0, le=60)] = 1.0
    group_per_minute: Annotated[int, Field(ge=2, le=60)] = (
        20  # Telegram: 20 a minute into one group
    )
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    # A row a sender claimed but did not finish (the process died) is taken up again after this.
    lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 60


class TimeRange(_Strict):
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        match = _HOURS.match(text.replace(" ", ""))
        if not match:
            raise ValueError(f"{text!r} is not a time range like 10:00-19:00")
        h1, m1, h2, m2 = map(int, match.groups())
        try:
            start, end = time(h1, m1), time(h2, m2)
        except ValueError:
            raise ValueError(f"{text!r} is not a time range like 10:00-19:00") from None
        if start >= end:
            raise ValueError(f"{text!r} ends before it starts")
        return cls(start=start, end=end)


# Ids travel in button data (64 bytes at most), so they are kept short.
ShortId = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,16}$")]


class Master(_Strict):
    id: ShortId
    name: Annotated[str, Field(min_length=1, max_length=64)]
    hours: dict[str, TimeRange]
    breaks: list[TimeRange] = []
    # Other spellings of this master in an imported file (`carebot import visits`), e.g. "Анна К."
    aliases: list[str] = []

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        unknown = set(value) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday {sorted(unknown)[0]!r}; use {', '.join(WEEKDAYS)}")
        return {day: TimeRange.parse(v) if isinstance(v, str) else v for day, v in value.items()}

    @field_validator("breaks", mode="before")
    @classmethod
    def _breaks(cls, value: object) -> object:
        if isinstance(value, list):
            return [TimeRange.parse(v) if isinstance(v, str) else v for v in value]
        return value


class Service(_Strict):
    id: ShortId
    name: Annotated[str, Field(min_length=1, max_length=64)]
    duration_minutes: Annotated[int, Field(ge=5, le=24 * 60)]
    price: Annotated[int, Field(ge=0)]
    cycle_days: Annotated[int, Field(ge=1, le=3650)]
    masters: list[str] = []
    # Other names of this service in an imported file (`carebot import visits`): a visit whose
    # service matches neither the id, the name nor an alias (any case) is refused, with its line.
    aliases: list[str] = []
    survey_delay_hours: Annotated[float, Field(ge=0, le=24 * 7)] | None = (
        None  # else [surveys] delay_hours
    )


class Booking(_Strict):
    """Appointments: the slot grid, the due-offer timing, the master's answer, the reminders."""

    grid_minutes: Annotated[int, Field(ge=5, le=240)] = 30
    days_ahead: Annotated[int, Field(ge=1, le=90)] = 14  # how far ahead a customer may book
    offer_slots: Annotated[int, Field(ge=1, le=12)] = 6  # free slots shown in a due-offer
    # The due-offer goes at this share of the customer's cycle, but 3-5 days before the due date.
    offer_at_share: Annotated[float, Field(gt=0, lt=1)] = 5 / 6
    lead_min_days: Annotated[float, Field(ge=0, le=30)] = 3
    lead_max_days: Annotated[float, Field(ge=0, le=60)] = 5
    ignored_offers_limit: Annotated[int, Field(ge=1, le=10)] = (
        2  # then: the sleeping-customer campaign
    )
    master_answer_hours: Annotated[float, Field(gt=0, le=72)] = (
        2  # working hours; then the admin chat
    )
    reminders_hours: list[Annotated[float, Field(gt=0, le=24 * 7)]] = [24, 2]
    min_notice_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = 60  # no booking closer than this

    @model_validator(mode="after")
    def _lead(self) -> Booking:
        if self.lead_min_days > self.lead_max_days:
            raise ValueError("lead_min_days is more than lead_max_days")
        return self


class Sleeping(_Strict):
    """A customer sleeps when their time since the last visit exceeds `factor` × their own
    usual interval; the reactivation planner writes to them once, and once more later."""

    enabled: bool = True
    factor: Annotated[float, Field(ge=1.1, le=20)] = 2
    second_after_days: Annotated[int, Field(ge=0, le=365)] = 7  # 0: no second message
    # /stats: asleep this many days on end, a customer counts as lost (half a year by default)
    lost_after_days: Annotated[int, Field(ge=1, le=3650)] = 180


class Broadcasts(_Strict):
    regular_visits: Annotated[int, Field(ge=2, le=1000)] = (
        3  # the "regular" segment: at least this many
    )
    # Telegram's paid broadcasts: up to 1,000 messages a second instead of about 30, each
    # message past the free 30 a second paid with 0.1 Star from the bot's balance.
    allow_paid_broadcast: bool = False
    paid_messages_per_second: Annotated[float, Field(gt=30, le=1000)] = 1000


class Care(_Strict):
    """The care chat: customers write to the bot, staff answer from the admin chat."""

    sign_replies: bool = False  # add the staff member's first name under each reply
    acknowledge_after_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = 30


class Retention(_Strict):
    """How long personal data is kept (0: kept until the customer asks, `/forget`). The
    retention planners erase what is older, in chunks, and write destruction records."""

    care_texts_days: Annotated[int, Field(ge=0, le=36500)] = 0  # care-chat words older than this
    inactive_customers_years: Annotated[int, Field(ge=0, le=100)] = 0  # nothing from them since


class Stats(_Strict):
    """The owner's numbers: the weekly digest to the admin chat (`bot.services.digest`)."""

    weekly_digest: bool = False  # every Monday: repeat share this week vs last, one chart
    digest_hour: Annotated[int, Field(ge=0, le=23)] = 9  # local hour on Monday it goes from


Share = Annotated[float, Field(ge=0, le=0.5)]  # of a campaign's customers kept as its holdout


class Variant(_Strict):
    """A campaign's second variant ("b"): another text and/or another coupon value (its days
    stay the campaign's). Half of those who are not held out get it, until the owner makes one
    of the two the default from `/stats campaigns`."""

    template: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")] | None = None
    percent: Annotated[int, Field(ge=1, le=100)] | None = None
    amount: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Variant:
        if self.percent is not None and self.amount is not None:
            raise ValueError("give at most one of percent or amount")
        if self.template is None and self.percent is None and self.amount is None:
            raise ValueError("give a template, a percent or an amount")
        return self


class CampaignRule(_Strict):
    holdout: Share | None = None  # None: [campaigns] holdout
    b: Variant | None = None


class Campaigns(_Strict):
    """Control groups and experiments (`bot.services.campaigns`): a share of each campaign's
    customers, chosen by a hash of (customer, campaign, salt), gets nothing, so its report
    can show what the message itself brought."""

    holdout: Share = 0.0  # 0: everyone gets every message (the default: nothing held back)
    window_days: Annotated[int, Field(ge=1, le=365)] = 30  # "came back" within this many days
    salt: Annotated[str, Field(min_length=1, max_length=64)] = "carebot"
    birthday: CampaignRule = CampaignRule()
    holiday: CampaignRule = CampaignRule()
    thanks: CampaignRule = CampaignRule()
    expiry: CampaignRule = CampaignRule()
    due_offer: CampaignRule = CampaignRule()
    reactivation: CampaignRule = CampaignRule()
    broadcast: CampaignRule = CampaignRule()  # every broadcast, each its own campaign

    @model_validator(mode="after")
    def _variants(self) -> Campaigns:
        for name in ("expiry", "due_offer"):  # they carry no coupon of their own
            variant = getattr(self, name).b
            if variant is not None and (variant.percent or variant.amount):
                raise ValueError(f"{name}.b: this message gives no coupon; give a template")
        for name in ("holiday", "broadcast"):  # each holiday and broadcast has its own text
            variant = getattr(self, name).b
            if variant is not None and variant.template is not None:
                raise ValueError(f"{name}.b: its text is its own; give a percent or an amount")
        return self

    def rule(self, campaign: str) -> CampaignRule:
        """`broadcast:7` is ruled by [campaigns.broadcast]."""
        return getattr(self, campaign.split(":", 1)[0], None) or CampaignRule()

    def holdout_of(self, campaign: str) -> float:
        own = self.rule(campaign).holdout
        return self.holdout if own is None else own


class Cashback(_Strict):
    """Points for every sale (`bot.services.loyalty`): `percent` of the amount, rounded down to
    whole points, 1 point = 1 ruble (or the business's currency unit); they expire
    `expire_months` after the sale (0: never). `max_share` is the most of one check points may
    pay (`bot.services.points_pay`: only when the customer confirms in their chat)."""

    enabled: bool = False
    percent: Annotated[float, Field(gt=0, le=100)] = 5
    max_share: Annotated[float, Field(gt=0, le=1)] = 0.3
    expire_months: Annotated[int, Field(ge=0, le=120)] = 12
    # a reminder (an offer: consent, quiet hours and the weekly cap apply) this many days before
    # an accrual's points expire, if some are left; 0: none
    remind_days_before: Annotated[int, Field(ge=0, le=60)] = 7
    # points for joining: credited once per person when they give their phone in onboarding
    # (bot/services/bonuses.py); 0: none
    welcome_bonus: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    # points for a birthday, credited with the birthday greeting (an offer: no greeting, no
    # bonus), once a year; 0: none
    birthday_bonus: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class Certificates(_Strict):
    """Gift certificates (`bot.services.certificates`): staff issue one with `/gift`; it is
    valid `expire_months` months from issue, through that last local day. enabled = false:
    no new ones are issued (those already sold are still claimed and spent)."""

    enabled: bool = False
    expire_months: Annotated[int, Field(ge=1, le=120)] = 12


class Tier(_Strict):
    """A club level (`bot.services.tiers`): reached by spending `min_spend` (in the currency's
    units) OR by `min_visits` purchases over the last 12 months; its `percent` is its members'
    cashback (instead of `[loyalty.cashback] percent`)."""

    name: Annotated[str, Field(min_length=1, max_length=32)]
    min_spend: Annotated[int | None, Field(ge=1)] = None
    min_visits: Annotated[int | None, Field(ge=1)] = None
    percent: Annotated[float, Field(gt=0, le=100)]

    @model_validator(mode="after")
    def _reachable(self) -> Tier:
        if self.min_spend is None and self.min_visits is None:
            raise ValueError(f"tier {self.name!r}: give min_spend, min_visits or both")
        return self


class Referral(_Strict):
    """Bring a friend (`bot.services.referrals`): each customer's personal link; a newcomer who
    joins through it gets `friend_bonus` points once their phone is given (a phone new to the
    business), and the one who brought them `referrer_reward` points after the friend's first
    purchase. 0: none of that bonus."""

    enabled: bool = False
    friend_bonus: Annotated[int, Field(ge=0, le=1_000_000)] = 300
    referrer_reward: Annotated[int, Field(ge=0, le=1_000_000)] = 500


class Stamps(_Strict):
    """The stamp card (`bot.services.stamps`): each sale of one of `services` (any sale when
    empty) adds a stamp; every `every`-th stamp completes the card, which gives a coupon for the
    next visit, worth `reward` ("free": the whole visit, or a percent off it), valid `valid_days`,
    and the card starts again. Stamps older than `expire_months` no longer count (0: never)."""

    enabled: bool = False
    every: Annotated[int, Field(ge=2, le=50)] = 6
    reward: int | str = "free"
    services: list[str] = []  # service ids; empty: any sale
    expire_months: Annotated[int, Field(ge=0, le=120)] = 12
    valid_days: Annotated[int, Field(ge=1, le=3650)] = 60  # the reward coupon's

    @field_validator("reward", mode="before")
    @classmethod
    def _reward(cls, value: object) -> object:
        if value == "free" or (type(value) is int and 1 <= value <= 100):
            return value
        raise ValueError('give "free" or a percent from 1 to 100')

    @property
    def percent(self) -> int:
        """The reward coupon's discount: 100 for a free visit."""
        return 100 if self.reward == "free" else int(self.reward)


class Package(_Strict):
    """A prepaid package (абонемент, `bot.services.packages`): `visits` visits of `service` sold
    for `price` (in the currency's units) with `/sale <customer> package:<name>`. Each later sale
    of that service to that customer uses one visit while some are left and it is valid
    (`expire_months` from the sale; 0: never): recorded as a visit of 0, with no cashback. A
    reminder (a service message: they paid for it) `remind_days_before` days before it expires
    with visits left; 0: none."""

    name: Annotated[str, Field(pattern=r"^[^\s:]{1,32}$")]  # one word: what staff type
    service: ShortId
    visits: Annotated[int, Field(ge=1, le=1000)]
    price: Annotated[int, Field(ge=1, le=100_000_000)]
    expire_months: Annotated[int, Field(ge=0, le=120)] = 6
    remind_days_before: Annotated[int, Field(ge=0, le=60)] = 7


class Loyalty(_Strict):
    """The loyalty programs; each may be off."""

    cashback: Cashback = Cashback()
    referral: Referral = Referral()
    certificates: Certificates = Certificates()
    stamps: Stamps = Stamps()
    # lowest first: each higher than the one before in what it asks and in its percent
    tiers: list[Tier] = []
    packages: list[Package] = []  # prepaid packages (абонементы), each its own [[loyalty.packages]]

    @model_validator(mode="after")
    def _tiers_ascend(self) -> Loyalty:
        names = [tier.name.casefold() for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("loyalty.tiers: two tiers with one name")
        for lower, higher in zip(self.tiers, self.tiers[1:], strict=False):
            for field in ("min_spend", "min_visits"):
                low, high = getattr(lower, field), getattr(higher, field)
                if low is not None and high is not None and high <= low:
                    raise ValueError(
                        f"loyalty.tiers: {higher.name!r} must ask more {field} than {lower.name!r}"
                        " (lowest tier first)"
                    )
            if higher.percent <= lower.percent:
                raise ValueError(
                    f"loyalty.tiers: {higher.name!r} must give more percent than {lower.name!r}"
                )
        return self

    def tier(self, name: str | None) -> Tier | None:
        """The configured tier of that name (a stored name no longer configured: none)."""
        return next((tier for tier in self.tiers if tier.name == name), None)

    def package(self, name: str | None) -> Package | None:
        """The configured package of that name, any case (none: not, or no longer, sold)."""
        wanted = (name or "").casefold()
        return next((p for p in self.packages if p.name.casefold() == wanted), None)


class Waitlist(_Strict):
    """When no time fits, a customer joins the waitlist (a service, a master or any, days, a time
    of day); a time freed later is offered to the waiting ones whose wishes fit, in order of
    joining, `offer_at_once` at a time; the first to tap books it."""

    enabled: bool = True
    offer_at_once: Annotated[int, Field(ge=1, le=20)] = 3
    answer_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 30  # untaken: the next ones get it
    max_entries: Annotated[int, Field(ge=1, le=20)] = 5  # a customer's entries at once
    # A time starting within `soon_hours` of the end of the quiet hours cannot wait for the
    # morning: during quiet hours it is offered at once ("send", a service message) or not at all.
    soon_hours: Annotated[float, Field(ge=0, le=48)] = 4
    soon_in_quiet_hours: Literal["send", "skip"] = "send"


# Currency signs a business file may use, and the ISO 4217 code Telegram Payments needs for each.
CURRENCY_CODES = {
    "₽": "RUB",
    "руб": "RUB",
    "руб.": "RUB",
    "р.": "RUB",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "₸": "KZT",
    "₴": "UAH",
    "Br": "BYN",
    "₾": "GEL",
    "֏": "AMD",
    "сум": "UZS",
}
DEPOSIT_POLICIES = ("none", "first_visit", "no_shows", "everyone")


class Deposits(_Strict):
    """Deposits through Telegram Payments and the no-show policy (`bot.services.deposits`).

    `policy` says who pays a deposit when booking one of `services` (empty: any service):
    nobody ("none": deposits and the cancel window are off), first-time customers, customers with
    at least `no_show_threshold` no-shows or late cancellations, or everyone; customers staff
    marked "only with deposit" pay under any policy but "none". The deposit is `amount` (in the
    currency's units) or `percent` of the service's price, in `currency` (ISO 4217; unset: the
    business's `currency` sign's code). The slot is held `hold_minutes` while they pay. Cancel and
    move are closed `cancel_window_hours` before a visit (0: never); a cancellation there (staff
    do it, the customer calls) is late: it counts like a no-show and keeps the deposit."""

    policy: Literal["none", "first_visit", "no_shows", "everyone"] = "none"
    services: list[str] = []
    amount: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    percent: Annotated[float, Field(gt=0, le=100)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    hold_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    no_show_threshold: Annotated[int, Field(ge=1, le=100)] = 1
    cancel_window_hours: Annotated[float, Field(ge=0, le=24 * 30)] = 24

    @model_validator(mode="after")
    def _one_value(self) -> Deposits:
        if self.amount is not None and self.percent is not None:
            raise ValueError("give amount or percent, not both")
        if self.policy != "none" and self.amount is None and self.percent is None:
            raise ValueError(f"policy {self.policy!r} needs the deposit: give amount or percent")
        return self

    @property
    def on(self) -> bool:
        return self.policy != "none"


class BusinessAccount(_Strict):
    """Telegram Business: customers write to the salon's own account, which connected the bot."""

    # Outside working hours (the masters' hours below), a customer who writes to the account is
    # told once per evening when they will be answered (through the account, if it allows replies).
    auto_reply: bool = False


class Business(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    staff_language: Annotated[str, Field(pattern=r"^(ru|en)$")] = "ru"
    care: Care = Care()
    marketing: Marketing = Marketing()
    birthday: BirthdayGreeting = BirthdayGreeting()
    thanks: ThanksOffer = ThanksOffer()
    holidays: list[Holiday] = []
    outbox: Outbox = Outbox()
    surveys: Surveys = Surveys()
    booking: Booking = Booking()
    sleeping: Sleeping = Sleeping()
    broadcasts: Broadcasts = Broadcasts()
    retention: Retention = Retention()
    stats: Stats = Stats()
    campaigns: Campaigns = Campaigns()
    loyalty: Loyalty = Loyalty()
    waitlist: Waitlist = Waitlist()
    deposits: Deposits = Deposits()
    business_account: BusinessAccount = BusinessAccount()
    reviews: list[ReviewLink] = []  # where happy customers can leave a public review
    currency: str = "₽"
    privacy_url: str = ""
    privacy_version: Annotated[str, Field(min_length=1, max_length=32)]
    # The wording of the question "may we send you offers?" (templates ask_offers): every answer
    # is stored with it. A new one does not ask again; a new privacy_version does.
    offers_version: Annotated[str, Field(min_length=1, max_length=32)] = "1"
    contact: str = ""
    coupons: Coupons
    services: list[Service] = []
    masters: list[Master] = []

    @field_validator("privacy_url")
    @classmethod
    def _privacy_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// link or empty")
        return value

    @model_validator(mode="after")
    def _references(self) -> Business:
        master_ids = {m.id for m in self.masters}
        service_ids = {s.id for s in self.services}
        for service in self.services:
            for master in service.masters:
                if master not in master_ids:
                    raise ValueError(f"service {service.id!r} names unknown master {master!r}")
        for holiday in self.holidays:
            for service_id in holiday.audience:
                if service_id not in service_ids:
                    raise ValueError(f"holiday {holiday.id!r} names unknown service {service_id!r}")
        return self

    @model_validator(mode="after")
    def _stamp_services(self) -> Business:
        known = {s.id for s in self.services}
        for service_id in self.loyalty.stamps.services:
            if service_id not in known:
                raise ValueError(f"loyalty.stamps names unknown service {service_id!r}")
        return self

    @model_validator(mode="after")
    def _deposits(self) -> Business:
        """Deposits name services of the file, in a currency Telegram can charge."""
        known = {s.id for s in self.services}
        for service_id in self.deposits.services:
            if service_id not in known:
                raise ValueError(f"deposits.services names unknown service {service_id!r}")
        if self.deposits.on and self.deposit_currency is None:
            raise ValueError(
                f"deposits.currency: the currency {self.currency!r} has no ISO 4217 code we know;"
                " give it (like RUB)"
            )
        return self

    @property
    def deposit_currency(self) -> str | None:
        """The ISO 4217 code deposits are charged in (None: none can be told)."""
        if self.deposits.currency:
            return self.deposits.currency
        sign = self.currency.strip()
        if re.fullmatch(r"[A-Z]{3}", sign):
            return sign
        return CURRENCY_CODES.get(sign) or CURRENCY_CODES.get(sign.lower())

    @model_validator(mode="after")
    def _packages(self) -> Business:
        """Each package names a service of the file, and no two share a name (any case)."""
        service_ids = {s.id for s in self.services}
        seen: set[str] = set()
        for package in self.loyalty.packages:
            if package.service not in service_ids:
                raise ValueError(
                    f"loyalty.packages: {package.name!r} names unknown service {package.service!r}"
                    f" (known: {', '.join(sorted(service_ids)) or 'none'})"
                )
            if package.name.casefold() in seen:
                raise ValueError(f"loyalty.packages: two packages named {package.name!r}")
            seen.add(package.name.casefold())
        return self

    @model_validator(mode="after")
    def _business_account(self) -> Business:
        """The auto-reply says when the salon opens: it needs the masters' hours."""
        if self.business_account.auto_reply and not any(m.hours for m in self.masters):
            raise ValueError(
                "business_account.auto_reply needs working hours: give [[masters]] their hours"
                " (or set auto_reply = false)"
            )
        return self

    def service(self, service_id: str | None) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def master(self, master_id: str | None) -> Master | None:
        return next((m for m in self.masters if m.id == master_id), None)

    def masters_of(self, service: Service) -> list[Master]:
        """Who does a service (a service that names nobody is done by every master)."""
        return [m for m in self.masters if not service.masters or m.id in service.masters]


def bundled_example() -> Path:
    """The commented example business file the package ships (data/business.toml in the source
    tree), used when the folder the bot runs in has none and BUSINESS_FILE is unset."""
    return Path(
        str(resources.files("bot.data") / "business.toml")
    )  # pip installs packages as files


def load_business(path: Path) -> Business:
    """Read and validate the business file; any fault becomes one line naming the field."""
    if path == bundled_example():
        logging.getLogger("carebot").warning(
            "no data/business.toml here: running with the example business; copy it there and describe "
            "yours (or set BUSINESS_FILE) example=%s",
            path,
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"business file {path} not found (BUSINESS_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"business file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"business file {path} is not valid TOML: {exc}") from None
    try:
        return Business.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"business file {path}: field {where}: {message}") from None
