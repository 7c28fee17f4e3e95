"""The consent keyboard, built without InlineKeyboardBuilder (handlers/onboarding.py), is the builder's markup."""

from __future__ import annotations

from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.rendering import Renderer
from handlers.callbacks import OnboardingAct, OnboardingCallback
from handlers.onboarding import _consent_keyboard


@pytest.mark.parametrize("privacy_url", [None, "https://example.com/privacy"])
@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_consent_keyboard_is_what_the_builder_made(privacy_url: str | None, lang: str) -> None:
    render = Renderer(ZoneInfo("UTC"))
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render.label(lang, "consent"),
        callback_data=OnboardingCallback(action=OnboardingAct.CONSENT),
    )
    if privacy_url:
        builder.button(text=render.label(lang, "privacy"), url=privacy_url)
    else:
        builder.button(
            text=render.label(lang, "privacy"),
            callback_data=OnboardingCallback(action=OnboardingAct.PRIVACY),
        )
    builder.adjust(1)
    business = SimpleNamespace(privacy_url=privacy_url)
    made = _consent_keyboard(render, lang, business)  # type: ignore[arg-type]
    assert made.model_dump(exclude_none=True) == builder.as_markup().model_dump(exclude_none=True)
