"""Settings from the environment and `.env`, exactly as DESIGN.md names them."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Relative paths are the folder the bot runs in: its database, business file and templates.
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/carebot.sqlite3"
DEFAULT_BUSINESS_FILE = Path("data/business.toml")
_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
# The README's and .env.example's token ("paste-your-token-from-BotFather") and the earlier ones
# ("123456789:your-token"): words a real, random token does not contain.
_PLACEHOLDER = re.compile(r"your-token|botfather", re.IGNORECASE)
_REPLACE_TOKEN = "replace the example token with yours from @BotFather"


def split_listen(value: str) -> tuple[str, int]:
    """HOST:PORT (`0.0.0.0:8080`, `[::1]:9000`) as a host and a port; ValueError if not."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT, like 127.0.0.1:9090")
    return host.strip("[]"), int(port)


class ConfigError(Exception):
    """A setting or the business file is wrong; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr
    telegram_api_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    admin_chat_id: int | None = None
    timezone: str = "Europe/Moscow"
    redis_url: str | None = None
    # Unset and no data/business.toml here: the commented example the package ships.
    business_file: Path = DEFAULT_BUSINESS_FILE
    webhook_secret: SecretStr | None = Field(default=None)
    # Keys the welcome-claim fingerprints (bot/keys.py); unset: a key file beside the database.
    secret_key: SecretStr | None = Field(default=None)
    # Seconds one Bot API call may take before it is given up (getUpdates gets its long-poll on top).
    telegram_timeout: float = Field(default=15.0, gt=0, le=600)
    # The payment provider's token from @BotFather → Payments (deposits, `[deposits]` in the
    # business file); unset: no deposits are asked, whatever the business file says.
    payment_provider_token: SecretStr | None = Field(default=None)
    # Polling mode: where /healthz and /metrics are served (HOST:PORT); unset: not served. In
    # webhook mode they are on the webhook's --listen address.
    http_listen: str | None = None
    # How often the planners run (on one instance at a time), in seconds.
    plan_every_seconds: float = Field(default=600.0, ge=1, le=86400)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if _PLACEHOLDER.search(token):
            raise ValueError(f"it is the example; {_REPLACE_TOKEN}")
        if not _TOKEN.match(token):
            raise ValueError(f"a token looks like 123456789:AAH…; {_REPLACE_TOKEN}")
        return SecretStr(token)

    @field_validator("admin_chat_id")
    @classmethod
    def _admin_chat(cls, value: int | None) -> int | None:
        if value is not None and value >= 0:
            raise ValueError(
                "a group's id is negative (like -1001234567890): send /chatid in the staff group "
                "and use the number it answers"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.match(r"^(rediss?|unix)://\S+$", value.strip()):
            raise ValueError(
                "must start with redis://, rediss:// or unix:// (like redis://127.0.0.1:6379/0)"
            )
        return value.strip()

    @field_validator("http_listen")
    @classmethod
    def _http_listen(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        split_listen(value.strip())
        return value.strip()

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value().strip()) < 16:
            raise ValueError(
                "must be at least 16 characters (for example the output of `openssl rand -hex 32`)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("payment_provider_token")
    @classmethod
    def _provider_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if not re.match(r"^\d+:(TEST|LIVE):\S+$", token):
            raise ValueError(
                "a provider token looks like 381764678:TEST:… or …:LIVE:… (@BotFather → your bot"
                " → Payments)"
            )
        return SecretStr(token)

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s):// URL of a Bot API server")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not (
            value.startswith("sqlite+aiosqlite://") or value.startswith("postgresql+asyncpg://")
        ):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown IANA time zone {value!r} (for example Europe/Moscow)"
            ) from None
        return value

    @model_validator(mode="after")
    def _example_business(self) -> Settings:
        if "business_file" not in self.model_fields_set and not self.business_file.exists():
            from bot.business import bundled_example

            self.business_file = bundled_example()  # load_business says so when it reads it
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def database_label(self) -> str:
        """The database for the start-up line, without a password."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)


def load_settings(**overrides: object) -> Settings:
    """Read settings; turn pydantic's report into one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        if error["type"] == "missing":
            raise ConfigError(
                f"setting {name} is missing: set it in the environment or in .env"
            ) from None
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"setting {name} is malformed: {message}") from None
