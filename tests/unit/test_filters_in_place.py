"""The dispatcher checks every filter in place: none is handed to a worker thread (handlers.filters_in_place)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Dispatcher, F
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.types import Chat, Message, User

from handlers import filters_in_place, setup_dispatcher
from handlers.filters import from_a_person


def _message(text: str, user_id: int = 7) -> Message:
    return Message(
        message_id=1,
        date=datetime(2026, 1, 1, tzinfo=UTC),
        chat=Chat(id=user_id, type="private"),
        from_user=User(id=user_id, is_bot=False, first_name="Анна"),
        text=text,
    )


def test_every_filter_of_the_dispatcher_is_a_coroutine() -> None:
    dp = Dispatcher()
    setup_dispatcher(dp, customers=None)  # type: ignore[arg-type]  # the middleware only keeps it
    filters = [
        f
        for router in dp.chain_tail
        for observer in router.observers.values()
        for handler in (observer._handler, *observer.handlers)
        for f in handler.filters or ()
    ]
    assert len(filters) > 50
    assert [f for f in filters if not f.awaitable] == []


async def test_a_filter_in_place_answers_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a filter went to a worker thread")

    dp = Dispatcher()
    router = dp.message
    router.register(lambda: None, F.text == "привет", from_a_person)
    filters_in_place(dp)
    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    handler = router.handlers[0]
    assert (await handler.check(_message("привет")))[0] is True
    assert (await handler.check(_message("пока")))[0] is False
    assert (await handler.check(_message("привет", user_id=777000)))[
        0
    ] is False  # Telegram's service account
    assert all(isinstance(f, FilterObject) and f.awaitable for f in handler.filters or ())
