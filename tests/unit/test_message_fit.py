"""Messages with free text in them (notes, names, comments, an owner's broadcast) always fit
Telegram's limits, measured as Telegram does: UTF-16 units of the text shown."""

from __future__ import annotations

from datetime import UTC, date, datetime
from html import escape
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup

from bot.business import Business
from bot.outbox.compose import STOP_HINT, STOP_HINT_GAP
from bot.rendering import LANGUAGES, Renderer
from bot.services.broadcasts import BroadcastService
from bot.services.coupons import CouponView
from bot.services.staff import CustomerCard, HistoryEntry, card_text, history_text
from bot.services.surveys import SurveyService, SurveyView
from bot.telegram_text import CAPTION_LIMIT, TEXT_LIMIT, utf16_len, visible, visible_len

MOSCOW = ZoneInfo("Europe/Moscow")
AT = datetime(2026, 11, 23, 9, tzinfo=UTC)
NAME = "Анастасия-Виктория 🌸 Константинопольская-Преображенская 💅💅💅💅💅💅💅💅"  # 64 characters
NOTE = (
    "<лак> & " + ("💅" * 196 + " &") * 10
)  # 1,988 characters (the most a note may have), 3,948 units


@pytest.fixture
def render() -> Renderer:
    return Renderer(MOSCOW)


def _card(**changes: object) -> CustomerCard:
    coupon = CouponView(
        id=1,
        code="K7QM3XPA",
        kind="welcome",
        percent=10,
        amount=None,
        valid_until=date(2026, 12, 23),
    )
    fields: dict[str, object] = dict(
        id=1,
        name=NAME,
        phone="+79161234567",
        username="anastasia_viktoria_long_username",
        source="instagram",
        visits=12,
        spent_minor=12_345_600,
        last_visit=AT,
        coupons=[coupon],
        last_note=NOTE,
        blocked=False,
        marketing=True,
        registered=True,
        tg_user_id=5001,
        csat_answers=3,
        csat_average=4.67,
        no_shows=1,
        next_visit=AT,
    )
    fields.update(changes)
    return CustomerCard(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_card_with_a_long_note_and_name_fits(
    render: Renderer, business: Business, lang: str
) -> None:
    card = _card()
    whole = render.text(lang, "staff_card", card=card, business=business)
    assert visible_len(whole) > TEXT_LIMIT  # seen: "message is too long" on every /find
    text = card_text(render, lang, card, business)
    assert visible_len(text) <= TEXT_LIMIT
    assert f"<b>{escape(NAME)}</b> · +79161234567 · @anastasia_viktoria_long_username · #1" in text
    assert f"📝 {escape(NOTE[:500])}" in text and "…" in text  # the note, shortened
    assert "K7QM3XPA" in text and "@anastasia_viktoria_long_username" in text  # the rest is whole


def test_a_short_card_is_left_alone(render: Renderer, business: Business) -> None:
    card = _card(last_note="любит кофе & чай")
    assert card_text(render, "ru", card, business) == render.text(
        "ru", "staff_card", card=card, business=business
    )


def test_history_of_long_notes_fits_each_shortened_alike(
    render: Renderer, business: Business
) -> None:
    history = [HistoryEntry(AT, "Ольга", "note", {"text": f"{n} {NOTE}"}) for n in range(15)]
    history.insert(
        3,
        HistoryEntry(
            AT, "Ольга", "sale", {"amount_minor": 150000, "service": None, "master": None}
        ),
    )
    text = history_text(render, "ru", _card(), history, business)
    assert visible_len(text) <= TEXT_LIMIT
    notes = [line for line in text.splitlines() if "заметка: " in line]
    lengths = [visible_len(line) for line in notes]
    assert len(notes) == 15 and max(lengths) - min(lengths) <= 1  # alike (an emoji is 2 units)
    assert all(line.endswith("…") for line in notes) and "продажа 1\u00a0500\u00a0₽" in text


def _survey(comment: str | None, resolved: bool = False) -> SurveyView:
    return SurveyView(
        id=1,
        customer_id=1,
        tg_user_id=6001,
        name=NAME,
        phone="+79161234567",
        service="Маникюр с покрытием",
        master="Анна",
        amount_minor=200000,
        bought_at=AT,
        score=1,
        comment=comment,
        answered_at=AT,
        alert_message_id=None,
        resolved_at=AT if resolved else None,
        resolved_by="Ольга (@olga_admin)" if resolved else None,
    )


@pytest.fixture
def surveys(business: Business, render: Renderer) -> SurveyService:
    return SurveyService(None, None, business, MOSCOW, render)  # type: ignore[arg-type]


def test_an_alert_with_a_short_comment_is_one_message(surveys: SurveyService) -> None:
    [text] = surveys.alert_texts(_survey("Покрытие & <лак> скололось"), "ru")
    assert text.startswith("⚠️ <b>Оценка 1 из 5</b> — " + escape(NAME))
    assert "Ответьте на это сообщение" in text
    assert text.endswith("Комментарий: «Покрытие &amp; &lt;лак&gt; скололось»")
    [text] = surveys.alert_texts(_survey(None), "ru")
    assert "Комментарий" not in text


def test_an_alert_shortens_its_card_for_the_whole_comment(surveys: SurveyService) -> None:
    comment = ("Всё плохо 😡 & <лак> " * 300)[:3700].strip()
    [text] = surveys.alert_texts(_survey(comment), "ru")
    assert visible_len(text) <= TEXT_LIMIT
    assert text.startswith("⚠️ <b>Оценка 1 из 5</b>") and f"«{escape(comment)}»" in text
    assert "Ответьте на это сообщение" not in text  # the card was cut, not the comment


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_comment_longer_than_a_message_goes_on_and_resolving_keeps_the_parts(
    surveys: SurveyService, lang: str
) -> None:
    comment = " ".join(("Всё плохо 😡 & <лак> " * 300)[:3900].split())
    assert utf16_len(comment) == 4094
    first, second = surveys.alert_texts(_survey(comment), lang)
    assert all(visible_len(part) <= TEXT_LIMIT for part in (first, second))
    assert first.startswith("⚠️ <b>") and "#1" in first
    word = "Комментарий" if lang == "ru" else "Comment"
    shown = visible(first).split(f"{word}: «", 1)[1] + " " + visible(second)
    assert " ".join(shown.split()) == comment + "»"
    resolved_first, resolved_second = surveys.alert_texts(_survey(comment, resolved=True), lang)
    assert resolved_second == second and resolved_first.split("«", 1)[1] == first.split("«", 1)[1]
    assert "✅" in resolved_first


def test_complaints_and_csat_shorten_long_comments(surveys: SurveyService) -> None:
    comment = " ".join(("Всё плохо 😡 & <лак> " * 300)[:3900].split())
    cases = [_survey(comment) for _ in range(5)]
    text = surveys.complaints_text("ru", cases)
    assert visible_len(text) <= TEXT_LIMIT and text.count("…»") == 5
    assert (
        visible_len(surveys.render.text("ru", "complaints", cases=cases, business=surveys.business))
        > TEXT_LIMIT
    )
    short = surveys.complaints_text("ru", [_survey("коротко")])
    assert short == surveys.render.text(
        "ru", "complaints", cases=[_survey("коротко")], business=surveys.business
    )


@pytest.mark.parametrize(("kind", "limit"), [("text", TEXT_LIMIT), ("photo", CAPTION_LIMIT)])
def test_broadcast_content_leaves_room_for_the_longest_coupon(
    business: Business, render: Renderer, kind: str, limit: int
) -> None:
    """Seen: the limit was 3,500 characters of HTML: a 3,400-character text of emoji (6,800
    units) passed and then failed for every recipient, while 3,600 plain letters were refused.
    Room is left for the first offer's line on how to stop offers too."""
    service = BroadcastService(None, None, business, MOSCOW, render, None)  # type: ignore[arg-type]
    room = service.content_limit(kind)
    assert limit - 250 < room < limit
    content = Markup(escape("😀&" * (room // 3) + "x" * (room % 3)))
    assert visible_len(content) == room
    coupon = CouponView(
        id=1,
        code="ABCD2345",
        kind="broadcast",
        percent=None,
        amount=999_999,
        valid_until=date(2026, 12, 31),
    )
    for lang in LANGUAGES:
        sent = render.text(lang, "broadcast", content=content, coupon=coupon, business=business)
        assert visible_len(sent + STOP_HINT_GAP + render.text(lang, STOP_HINT)) <= limit
