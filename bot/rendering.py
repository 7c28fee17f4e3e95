"""Message texts from Jinja2 templates, one folder per language, autoescaped for Telegram HTML.

`*.html` templates are messages (escaped: a customer named `<b>Ann</b>` is shown as typed);
`*.txt` templates hold plain labels (buttons, pop-up answers), which Telegram never parses.
A file of the same name under `data/templates/` overrides the bundled one.
"""
from __future__ import annotations

from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from bot import PROJECT_ROOT

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
BUNDLED = PROJECT_ROOT / "templates"
OVERRIDES = PROJECT_ROOT / "data" / "templates"


def pick_language(telegram_code: str | None) -> str:
    """Russian by default; English when the customer's Telegram speaks English."""
    if telegram_code and telegram_code.lower().split("-")[0] == "en":
        return "en"
    return DEFAULT_LANGUAGE


def _format_date(value: date | datetime, lang: str = DEFAULT_LANGUAGE) -> str:
    return value.strftime("%d.%m.%Y") if lang == "ru" else value.strftime("%d %b %Y")


def _format_money(minor: int, currency: str = "") -> str:
    """1500 ₽, 1 500,50 ₽: spaces between thousands, kopecks only when there are any."""
    whole, cents = divmod(int(minor), 100)
    text = f"{whole:,}".replace(",", "\u00a0")
    if cents:
        text += f",{cents:02d}"
    return f"{text}\u00a0{currency}".strip()


def _format_birthday(value: Any, lang: str = DEFAULT_LANGUAGE) -> str:
    text = f"{value.day:02d}.{value.month:02d}"
    return f"{text}.{value.year}" if value.year else text


_WEEKDAYS = {"ru": ("пн", "вт", "ср", "чт", "пт", "сб", "вс"), "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


def _format_day(value: date | datetime, lang: str = DEFAULT_LANGUAGE) -> str:
    """A day as a customer picks it: "ср 25.11" / "Wed 25 Nov"."""
    weekday = _WEEKDAYS.get(lang, _WEEKDAYS["ru"])[value.weekday()]
    return f"{weekday} {value:%d.%m}" if lang == "ru" else f"{weekday} {value:%d %b}"


class Renderer:
    def __init__(self, tz: tzinfo, directories: list[Path] | None = None) -> None:
        self.tz = tz
        self.env = Environment(
            loader=FileSystemLoader([str(d) for d in (directories or [OVERRIDES, BUNDLED])]),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["date"] = _format_date
        self.env.filters["birthday"] = _format_birthday
        self.env.filters["local"] = lambda value: value.astimezone(self.tz)
        self.env.filters["money"] = _format_money
        self.env.filters["datetime"] = lambda value: value.astimezone(self.tz).strftime("%d.%m.%Y %H:%M")
        self.env.filters["day"] = _format_day
        self.env.filters["hhmm"] = lambda value: value.astimezone(self.tz).strftime("%H:%M")
        # a visit's time: "ср 25.11 в 10:00" / "Wed 25 Nov at 10:00", in the business's time zone
        self.env.filters["when"] = lambda value, lang=DEFAULT_LANGUAGE: "{} {} {:%H:%M}".format(
            _format_day(value.astimezone(self.tz), lang), "в" if lang == "ru" else "at", value.astimezone(self.tz))

    def text(self, lang: str, template: str, /, **context: Any) -> Markup:
        """A message: `templates/<lang>/<name>.html`, rendered and trimmed.

        Returned as Markup (already escaped) so that one rendered text can be put inside
        another without being escaped twice.
        """
        loaded = self.env.get_template(f"{lang}/{template}.html")
        return Markup(loaded.render(lang=lang, **context).strip())

    def label(self, lang: str, key: str, /, **context: Any) -> str:
        """A plain label from `templates/<lang>/labels.txt` (a macro of that name)."""
        macro = getattr(self.env.get_template(f"{lang}/labels.txt").module, key)
        return str(macro(**context)).strip()
