"""Every button press is answered once: by aiogram's CallbackAnswerMiddleware (before the handler,
or after it with the alert it sets), or by a handler flagged to answer it itself — never both
(a second answer is an error at Telegram), never neither (the button spins for seconds)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from aiogram.dispatcher.event.handler import HandlerObject

from handlers import all_routers


def callback_handlers() -> Iterator[HandlerObject]:
    for router in all_routers():
        for nested in router.chain_tail:
            yield from nested.callback_query.handlers


def answers_itself(function: Callable[..., Any], seen: set[Any] | None = None) -> bool:
    """Whether a handler, or a function of its module that it calls, answers the press."""
    seen = seen if seen is not None else set()
    seen.add(function)
    if "callback.answer(" in inspect.getsource(function):
        return True
    module = inspect.getmodule(function)
    helpers = (getattr(module, name, None) for name in function.__code__.co_names)
    return any(
        answers_itself(helper, seen)
        for helper in helpers
        if inspect.isfunction(helper) and helper not in seen and inspect.getmodule(helper) is module
    )


def test_every_press_is_answered_once() -> None:
    handlers = list(callback_handlers())
    assert len(handlers) > 30
    wrong = []
    for handler in handlers:
        flag = handler.flags.get("callback_answer") or {}
        disabled = bool(flag.get("disabled"))
        if answers_itself(handler.callback) != disabled:
            wrong.append(
                f"{handler.callback.__module__}.{handler.callback.__name__} disabled={disabled}"
            )
    assert wrong == []


def test_an_alert_set_for_the_middleware_goes_after_the_handler() -> None:
    for handler in callback_handlers():
        if "callback_answer" in inspect.signature(handler.callback).parameters:
            assert (handler.flags.get("callback_answer") or {}).get("pre") is False, (
                handler.callback.__name__
            )


def test_the_press_is_the_first_argument() -> None:
    """aiogram passes the event positionally: a handler's first parameter is the press."""
    for handler in callback_handlers():
        first = next(iter(inspect.signature(handler.callback).parameters))
        assert first == "callback", handler.callback.__name__
