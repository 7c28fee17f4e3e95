"""After-purchase satisfaction surveys: hear every unhappy customer before the internet does."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.business import Business
from bot.buttons import Button, Keyboard, SurveyScore, dump
from bot.clock import Clock
from bot.db.models import Customer, OutboxState, Purchase, Survey
from bot.db.repositories import Database, Repos
from bot.events import PurchaseRecorded
from bot.outbox import MARKETING, SERVICE
from bot.outbox.policy import Policy
from bot.rendering import Renderer
from bot.services.staff import Staff
from bot.telegram_text import TEXT_LIMIT, card_messages, fit_shortened, truncate_text

if TYPE_CHECKING:
    from bot.features import Features

LOW = 3  # a score of 1-3 alerts the staff
MAX_COMMENT = TEXT_LIMIT  # all a customer can write in one message: kept whole, never cut
LATEST_COMMENTS = 5
ALERT_CARD_ROOM = 1024  # a comment too long for one message leaves the alert's card this much
MAX_PROMPTS_KEPT = 10_000  # comment prompts remembered (the oldest forgotten first)


class SurveyOutcome(StrEnum):
    RECORDED = "recorded"
    ALREADY_ANSWERED = "already_answered"
    CLOSED = "closed"
    NOT_YOURS = "not_yours"  # someone else's survey, an unknown id, or a score that is not 1-5


@dataclass(frozen=True)
class SurveyView:
    id: int
    customer_id: int
    tg_user_id: int | None
    name: str | None
    phone: str | None
    service: str | None
    master: str | None
    amount_minor: int
    bought_at: datetime
    score: int | None
    comment: str | None
    answered_at: datetime | None
    alert_message_id: int | None
    resolved_at: datetime | None
    resolved_by: str | None

    @property
    def low(self) -> bool:
        return self.score is not None and self.score <= LOW


class _NotRecorded(Exception):
    """A tap that records nothing: raised inside the answer's transaction to roll it back."""

    def __init__(self, outcome: SurveyOutcome, survey: SurveyView | None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.survey = survey


@dataclass(frozen=True)
class Rating:
    title: str
    answers: int
    average: float


@dataclass(frozen=True)
class CsatReport:
    since: datetime
    asked: int
    answered: int
    average: float | None
    distribution: dict[int, int]
    by_master: list[Rating]
    by_service: list[Rating]
    comments: list[SurveyView] = field(default_factory=list)

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.asked if self.asked else None


def score_keyboard(survey_id: int, render: Renderer, lang: str) -> Keyboard:
    """1-5 in a row."""
    return [
        [Button(render.label(lang, f"score_{n}"), SurveyScore(survey_id, n)) for n in range(1, 6)]
    ]


def _cut_comments(surveys: list[SurveyView], cap: int | None) -> list[SurveyView]:
    if cap is None:
        return surveys
    return [replace(s, comment=truncate_text(s.comment, cap)) if s.comment else s for s in surveys]


def _longest(surveys: list[SurveyView]) -> int:
    return max((2 * len(s.comment) for s in surveys if s.comment), default=0)


class SurveyService:
    def __init__(
        self, db: Database, clock: Clock, business: Business, tz: ZoneInfo, render: Renderer
    ) -> None:
        self.db = db
        self.clock = clock
        self.business = business
        self.tz = tz
        self.render = render
        self.policy = Policy(business.marketing, tz)
        # The message that asked for each answered survey's comment, only to take its Skip
        # button off once the comment is in. Kept in memory, not stored: it is sent after the
        # answer is stored, so storing it would cost the customer's tap a second write
        # transaction (issue 15). After a restart the button stays; a tap on it is answered
        # as a stale button.
        self.comment_prompts: dict[int, int] = {}

    def register(self, features: Features) -> None:
        """A purchase plans its satisfaction survey."""
        features.on_purchase(self.plan_after_purchase)

    async def plan_after_purchase(self, repos: Repos, event: PurchaseRecorded) -> None:
        """Subscribed to purchases: one survey per purchase, at most one per customer per N days."""
        settings = self.business.surveys
        if not settings.enabled:
            return
        since = event.at - timedelta(days=settings.every_days)
        recent = await repos.surveys.planned_since(event.customer_id, since)
        customer = await repos.customers.get(event.customer_id)
        # nobody to ask: erased, or imported from the owner's base and not in Telegram yet
        if recent or customer is None or customer.tg_user_id is None:
            return
        service = self.business.service(event.service_id)
        delay = (
            service.survey_delay_hours
            if service and service.survey_delay_hours is not None
            else settings.delay_hours
        )
        planned = self.policy.morning(event.at + timedelta(hours=delay))  # never at night
        closes = planned + timedelta(hours=settings.closes_after_hours)
        survey = Survey(
            purchase_id=event.purchase_id,
            customer_id=event.customer_id,
            service_id=event.service_id,
            master_id=event.master_id,
            planned_at=planned,
            closes_at=closes,
        )
        await repos.surveys.add(survey)
        await repos.outbox.queue(
            key=f"survey:{event.purchase_id}",
            customer_id=event.customer_id,
            kind=MARKETING if settings.marketing else SERVICE,
            template="survey_question",
            data={"survey_id": survey.id},
            markup=dump(score_keyboard(survey.id, self.render, customer.language)),
            not_before=planned,
            not_after=min(closes, planned + timedelta(hours=24)),
            now=event.at,
        )

    async def _view(self, repos: Repos, survey: Survey) -> SurveyView:
        return (await self._views(repos, [survey]))[0]

    async def _views(self, repos: Repos, surveys: list[Survey]) -> list[SurveyView]:
        """Views of these surveys with their customers and purchases: two queries, however many."""
        if not surveys:
            return []
        customers = await repos.customers.by_ids({s.customer_id for s in surveys})
        purchases = await repos.purchases.by_ids({s.purchase_id for s in surveys})
        return [
            self._view_of(s, customers[s.customer_id], purchases[s.purchase_id]) for s in surveys
        ]

    def _view_of(self, survey: Survey, customer: Customer, purchase: Purchase) -> SurveyView:
        return SurveyView(
            id=survey.id,
            customer_id=customer.id,
            tg_user_id=customer.tg_user_id,
            name=customer.name,
            phone=customer.phone,
            service=getattr(self.business.service(survey.service_id), "name", None),
            master=getattr(self.business.master(survey.master_id), "name", None),
            amount_minor=purchase.amount_minor,
            bought_at=purchase.at,
            score=survey.score,
            comment=survey.comment,
            answered_at=survey.answered_at,
            alert_message_id=survey.alert_message_id,
            resolved_at=survey.resolved_at,
            resolved_by=survey.resolved_by,
        )

    async def _own(self, repos: Repos, tg_user_id: int, survey_id: int) -> Survey | None:
        customer = await repos.customers.by_tg_user(tg_user_id)
        survey = await repos.surveys.get(survey_id, for_update=True)
        if customer is None or survey is None or survey.customer_id != customer.id:
            return None
        return survey

    @staticmethod
    async def _asked(repos: Repos, survey: Survey) -> bool:
        """Only a survey that was really sent can be answered (a forged early tap cannot).
        "sending" counts too: the customer can tap the buttons before the sender has recorded
        Telegram's answer, and that tap is real."""
        state = await repos.outbox.state_of(f"survey:{survey.purchase_id}")
        return state in (OutboxState.SENDING, OutboxState.SENT)

    async def answer(
        self, tg_user_id: int, survey_id: int, score: int
    ) -> tuple[SurveyOutcome, SurveyView | None]:
        """Record the score, in one write transaction, which also stores what rides along with
        it (`ALONG`: the conversation's next step, which the handler set before calling). Only a
        recorded answer commits: any other outcome rolls back, so that step is not stored either
        and the conversation stays where it was."""
        now = self.clock.now()
        try:
            async with self.db.transaction() as repos:
                survey = await self._own(repos, tg_user_id, survey_id)
                if survey is None or not 1 <= score <= 5 or not await self._asked(repos, survey):
                    raise _NotRecorded(SurveyOutcome.NOT_YOURS, None)
                if survey.score is not None:
                    raise _NotRecorded(
                        SurveyOutcome.ALREADY_ANSWERED, await self._view(repos, survey)
                    )
                if now >= survey.closes_at:
                    raise _NotRecorded(SurveyOutcome.CLOSED, None)
                survey.score, survey.answered_at = score, now
                return SurveyOutcome.RECORDED, await self._view(repos, survey)
        except _NotRecorded as not_recorded:
            return not_recorded.outcome, not_recorded.survey

    def prompt_sent(self, survey_id: int, message_id: int) -> None:
        """The message asking for this survey's comment was sent (see `comment_prompts`)."""
        self.comment_prompts[survey_id] = message_id
        while len(self.comment_prompts) > MAX_PROMPTS_KEPT:
            del self.comment_prompts[next(iter(self.comment_prompts))]  # the oldest

    def take_prompt(self, survey_id: int) -> int | None:
        """The message that asked for this survey's comment, if this process sent it."""
        return self.comment_prompts.pop(survey_id, None)

    async def comment(self, tg_user_id: int, survey_id: int, text: str) -> SurveyView | None:
        async with self.db.transaction() as repos:
            survey = await self._own(repos, tg_user_id, survey_id)
            if survey is None or survey.score is None:
                return None
            survey.comment = " ".join(text.split())[:MAX_COMMENT] or None
            return await self._view(repos, survey)

    def alert_texts(self, survey: SurveyView, lang: str) -> list[str]:
        """The staff alert: the card and the whole comment in one message, the card shortened if
        need be; a comment longer than a message goes on in the messages after it. The comment's
        parts do not depend on the card, so resolving (which edits the first message) keeps them."""
        card = self.render.text(lang, "survey_alert", survey=survey, business=self.business)
        body = (
            self.render.text(lang, "survey_alert_comment", comment=survey.comment)
            if survey.comment
            else ""
        )
        return card_messages(card, body, card_room=ALERT_CARD_ROOM)

    def complaints_text(self, lang: str, cases: list[SurveyView]) -> str:
        """Open complaints in one message: long comments cut, all to the same length."""
        return fit_shortened(
            lambda cap: self.render.text(
                lang, "complaints", cases=_cut_comments(cases, cap), business=self.business
            ),
            _longest(cases),
        )

    def csat_text(self, lang: str, report: CsatReport, days: int) -> str:
        return fit_shortened(
            lambda cap: self.render.text(
                lang,
                "csat",
                report=replace(report, comments=_cut_comments(report.comments, cap)),
                days=days,
                business=self.business,
            ),
            _longest(report.comments),
        )

    async def set_alert(self, survey_id: int, message_id: int) -> None:
        async with self.db.transaction() as repos:
            survey = await repos.surveys.get(survey_id)
            if survey is not None:
                survey.alert_message_id = message_id

    async def resolve(self, staff: Staff, survey_id: int) -> tuple[bool, SurveyView | None]:
        """Mark a complaint resolved; False when it already was (the view says by whom)."""
        async with self.db.transaction() as repos:
            survey = await repos.surveys.get(survey_id, for_update=True)
            if survey is None or survey.score is None or survey.score > LOW:
                return False, None
            if survey.resolved_at is not None:
                return False, await self._view(repos, survey)
            survey.resolved_at, survey.resolved_by = self.clock.now(), staff.name
            return True, await self._view(repos, survey)

    async def open_complaints(self) -> list[SurveyView]:
        async with self.db.transaction() as repos:
            return await self._views(repos, await repos.surveys.open_complaints(LOW))

    async def csat(self, days: int) -> CsatReport:
        """Surveys asked in the last `days` days: who answered, how, per master and service."""
        since = self.clock.now() - timedelta(days=days)
        async with self.db.transaction() as repos:
            asked = await repos.surveys.asked_since(since)
            answered = await repos.surveys.answered_since(since)
            scores = [s.score for s in answered if s.score is not None]
            distribution = {n: scores.count(n) for n in range(1, 6)}
            comments = await self._views(
                repos, [s for s in answered if s.comment][:LATEST_COMMENTS]
            )
        return CsatReport(
            since=since,
            asked=int(asked),
            answered=len(scores),
            average=round(sum(scores) / len(scores), 2) if scores else None,
            distribution=distribution,
            by_master=self._ratings(
                answered, "master_id", {m.id: m.name for m in self.business.masters}
            ),
            by_service=self._ratings(
                answered, "service_id", {s.id: s.name for s in self.business.services}
            ),
            comments=comments,
        )

    @staticmethod
    def _ratings(answered: list[Survey], attribute: str, names: dict[str, str]) -> list[Rating]:
        groups: dict[str, list[int]] = {}
        for survey in answered:
            key = getattr(survey, attribute)
            if key is not None and survey.score is not None:
                groups.setdefault(key, []).append(survey.score)
        return sorted(
            (Rating(names.get(k, k), len(v), round(sum(v) / len(v), 2)) for k, v in groups.items()),
            key=lambda r: (-r.answers, r.title),
        )
