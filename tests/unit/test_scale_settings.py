"""The settings and business-file keys of several instances: HTTP_LISTEN and PLAN_EVERY_SECONDS,
`[broadcasts] allow_paid_broadcast` and `paid_messages_per_second`; a mistake is one line naming
it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.business import load_business
from bot.settings import ConfigError, load_settings
from tests.conftest import BUSINESS_FILE, TOKEN


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "TIMEZONE", "ADMIN_CHAT_ID", "HTTP_LISTEN", "PLAN_EVERY_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.http_listen is None and settings.plan_every_seconds == 600


def test_http_listen_and_plan_every(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTP_LISTEN", "127.0.0.1:9090")
    env.setenv("PLAN_EVERY_SECONDS", "30")
    settings = load_settings()
    assert settings.http_listen == "127.0.0.1:9090" and settings.plan_every_seconds == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [("HTTP_LISTEN", "9090"), ("HTTP_LISTEN", "host:port"), ("PLAN_EVERY_SECONDS", "0")],
)
def test_a_mistake_names_the_setting(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"setting {name} is malformed")
    assert "\n" not in str(caught.value)


def test_paid_broadcasts_in_the_business_file(tmp_path: Path) -> None:
    assert load_business(BUSINESS_FILE).broadcasts.allow_paid_broadcast is False
    path = tmp_path / "business.toml"
    text = BUSINESS_FILE.read_text()
    path.write_text(text + "\n[broadcasts]\nallow_paid_broadcast = true\n")
    paid = load_business(path).broadcasts
    assert paid.allow_paid_broadcast and paid.paid_messages_per_second == 1000
    path.write_text(
        text + "\n[broadcasts]\nallow_paid_broadcast = true\npaid_messages_per_second = 5000\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_business(path)
    assert "paid_messages_per_second" in str(caught.value)
