"""The core's buttons (intents) and the edge's callback data: stored JSON round-trips, every
intent packs to the data buttons already in customers' chats carry, and every factory's action
is an enum."""

from __future__ import annotations

import ast
import typing
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import pytest
from aiogram.filters.callback_data import CallbackData

from bot import buttons as b
from handlers import callbacks
from handlers.keyboards import callback_of, keyboard_markup, stored_markup

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
MINUTES = int(AT.timestamp()) // 60

# One of each intent, and the data its button carried before intents existed (these strings are
# in customers' and staff's chats: they must keep meaning the same).
PACKED: list[tuple[b.Intent, str]] = [
    (b.BookSlot("manicure", "anna", AT), f"slot:offer:manicure:anna:{MINUTES}:0"),
    (
        b.BookSlot("manicure", "", AT, replaces=12, ask_first=True),
        f"slot:pick:manicure::{MINUTES}:12",
    ),
    (b.BookService("manicure"), "bk:masters:manicure::0:0"),
    (b.BookService("manicure", replaces=5), "bk:masters:manicure::0:5"),
    (b.OpenBooking(), "bcbook"),
    (b.BookingAction(b.BookingAct.ACCEPT, 3), "booking:accept:3"),
    (b.BookingAction(b.BookingAct.DECLINE, 3), "booking:decline:3"),
    (b.BookingAction(b.BookingAct.CONFIRM, 3), "booking:confirm:3"),
    (b.BookingAction(b.BookingAct.RESCHEDULE, 3), "booking:reschedule:3"),
    (b.BookingAction(b.BookingAct.CANCEL, 3), "booking:cancel:3"),
    (b.PostponeCycle("manicure", 2), "cycle:later:manicure:2"),
    (b.Unsubscribe(), "unsub"),
    (b.BroadcastReport(9), "bc:report:9"),
    (b.StopBroadcast(9), "bc:cancel:9"),
    (b.ShowCoupons(), "menu:coupons"),
    (b.SurveyScore(41, 5), "survey:41:5"),
    (b.AnswerPoints(7, True), "ppa:yes:7"),
    (b.AnswerPoints(7, False), "ppa:no:7"),
    (b.TakeWaitlistOffer(7), "wla:take:7"),
]


@pytest.mark.parametrize(("intent", "data"), PACKED, ids=[d for _, d in PACKED])
def test_each_intent_packs_as_its_buttons_always_did(intent: b.Intent, data: str) -> None:
    assert callback_of(intent).pack() == data


def test_every_intent_has_a_button() -> None:
    covered = {type(intent) for intent, _ in PACKED} | {b.OpenUrl}
    assert covered == set(b.INTENTS.values())


def test_stored_intents_round_trip() -> None:
    keyboard = [[b.Button(str(n), intent)] for n, (intent, _) in enumerate(PACKED)]
    keyboard.append([b.Button("site", b.OpenUrl("https://example.com/"))])
    stored = b.dump(keyboard)
    assert stored is not None and b.is_intents(stored)
    assert b.load(stored) == keyboard
    assert stored["buttons"][0][0] == {
        "text": "0",
        "intent": "slot",
        "service": "manicure",
        "master": "anna",
        "at": AT.isoformat(),
        "replaces": 0,
        "ask_first": False,
    }
    assert b.dump([]) is None and b.dump(None) is None


def test_stored_intents_become_an_inline_keyboard() -> None:
    stored = b.dump(
        [
            [b.Button("1", b.SurveyScore(4, 1)), b.Button("2", b.SurveyScore(4, 2))],
            [b.Button("site", b.OpenUrl("https://example.com/"))],
        ]
    )
    markup = stored_markup(stored)
    assert markup is not None
    assert markup.model_dump(exclude_none=True) == {
        "inline_keyboard": [
            [
                {"text": "1", "callback_data": "survey:4:1"},
                {"text": "2", "callback_data": "survey:4:2"},
            ],
            [{"text": "site", "url": "https://example.com/"}],
        ]
    }
    assert keyboard_markup([]) is None and stored_markup(None) is None


def test_a_row_stored_before_intents_is_sent_as_it_is() -> None:
    legacy = {
        "inline_keyboard": [
            [{"text": "Мои купоны", "callback_data": "menu:coupons"}],
            [{"text": "site", "url": "https://example.com/"}],
        ]
    }
    markup = stored_markup(legacy)
    assert markup is not None and markup.model_dump(exclude_none=True) == legacy


FACTORIES = [
    v
    for v in vars(callbacks).values()
    if isinstance(v, type) and issubclass(v, CallbackData) and v is not CallbackData
]


def test_every_action_and_step_is_an_enum_and_prefixes_are_unique() -> None:
    assert len(FACTORIES) == 25
    prefixes = [f.__prefix__ for f in FACTORIES]  # type: ignore[attr-defined]
    assert len(prefixes) == len(set(prefixes))
    for factory in FACTORIES:
        hints = typing.get_type_hints(factory, include_extras=False)
        for name in ("action", "step"):
            if name in hints:
                assert issubclass(hints[name], StrEnum), (factory, name)


@pytest.mark.parametrize(
    "data",
    [
        "slot:bogus:manicure:anna:29000000:0",
        "bk:nowhere:manicure::0:0",
        "booking:explode:1",
        "cycle:sooner:manicure:1",
        "menu:bogus",
        "bc:bogus:1",
        "card:bogus:1",
        "sale:bogus:-",
        "complaint:bogus:1",
        "bw:bogus:",
        "onb:bogus",
        "ppa:bogus:1",
        "ppa:yes:-1",
        "ppay:x",
        "cwin:broadcast:b:20261101:20261123",
        "cwin:reactivation:holdout:20261101:20261123",
        "cwin:reactivation:b:-1:20261123",
        "wl:x:manicure:anna:20261123:20261124:any",
        "wl:j:manicure:anna:20261123:20261124:noon",
        "wla:bogus:1",
        "wla:take:-1",
    ],
)
def test_a_forged_action_does_not_unpack(data: str) -> None:
    factory = next(f for f in FACTORIES if data.split(":")[0] == f.__prefix__)  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        factory.unpack(data)


ROOT = Path(__file__).resolve().parents[2]


# The Bot API stand-in and the demo's page play Telegram's side: they read the keyboards the bot
# sends, which is not the core writing one.
PLAYS_TELEGRAM = ("bot/standin.py", "bot/demo/")


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_callback_data_is_made_in_one_place() -> None:
    """Every factory is in handlers/callbacks.py, and the core writes no Telegram keyboard JSON
    ("inline_keyboard", "callback_data"): it returns intents."""
    outside = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _modules("handlers") + _modules("bot")
        if path.name != "callbacks.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and any(getattr(base, "id", None) == "CallbackData" for base in node.bases)
    ]
    assert outside == []
    telegram_json = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _modules("bot")
        if not path.relative_to(ROOT).as_posix().startswith(PLAYS_TELEGRAM)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in ("inline_keyboard", "callback_data")
    ]
    assert telegram_json == []
