"""Message texts from Jinja2 templates, one folder per language, autoescaped for Telegram HTML.

`*.html` templates are messages (escaped: a customer named `<b>Ann</b>` is shown as typed);
`*.txt` templates hold plain labels (buttons, pop-up answers), which Telegram never parses.
A file of the same name under `data/templates/` of the folder the bot runs in overrides the
bundled one (the package's `bot.templates`, templates/ in the source tree).
Dates, weekdays, money and plurals are Babel's (CLDR), by the template's language.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, tzinfo
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from markupsafe import Markup

from bot.db.models import BookingState, BroadcastState

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
BUNDLED = "bot.templates"  # the package that ships templates/<language>/ (pyproject.toml)
OVERRIDES = Path("data") / "templates"  # the owner's own words, under the folder the bot runs in
_LOCALES = {lang: Locale.parse(lang) for lang in LANGUAGES}
# Babel patterns, one per language: what the texts have always shown ("ср 25.11" / "Wed 25 Nov").
_DATE = {"ru": "dd.MM.y", "en": "dd MMM y"}
_DAY = {"ru": "EEE dd.MM", "en": "EEE dd MMM"}
_WHEN = {"ru": "EEE dd.MM 'в' HH:mm", "en": "EEE dd MMM 'at' HH:mm"}
_DATETIME = "dd.MM.y HH:mm"  # the same in both languages (staff read it beside other numbers)


def pick_language(telegram_code: str | None) -> str:
    """Russian by default; English when the customer's Telegram speaks English."""
    if telegram_code and telegram_code.lower().split("-")[0] == "en":
        return "en"
    return DEFAULT_LANGUAGE


def _lang(context: Context, lang: str | None) -> str:
    """The language asked for, else the one of the template being rendered (`en/…`, also inside
    an imported macro), else the context's `lang`."""
    if lang in _LOCALES:
        return lang
    folder = (context.name or "").split("/", 1)[0]
    if folder in _LOCALES:
        return folder
    found = context.get("lang")
    return found if found in _LOCALES else DEFAULT_LANGUAGE


@pass_context
def _format_date(context: Context, value: date | datetime, lang: str | None = None) -> str:
    """25.11.2026 / 25 Nov 2026."""
    lang = _lang(context, lang)
    return format_date(value, _DATE[lang], locale=_LOCALES[lang])


@pass_context
def _format_money(context: Context, minor: int, currency: str = "", lang: str | None = None) -> str:
    """1 500 ₽, 1 500,50 ₽ (1,500.50 ₽ in English): the locale's digit groups and decimal sign,
    kopecks only when there are any, the business's own currency sign (free text, not an ISO code)
    after a non-breaking space."""
    amount = Decimal(int(minor)).scaleb(-2)
    text = format_decimal(
        amount, "#,##0.00" if minor % 100 else "#,##0", locale=_LOCALES[_lang(context, lang)]
    )
    return f"{text}\u00a0{currency}" if currency else text


@pass_context
def _plural(context: Context, count: int, lang: str | None = None, **forms: str) -> str:
    """The word for a count by the language's plural rules (Babel/CLDR): in Russian
    `n | plural(one="день", few="дня", many="дней")`, in English `n | plural(one="day", other="days")`.
    A form not given falls back to `other`, then `many`."""
    form = _LOCALES[_lang(context, lang)].plural_form(abs(count))
    for name in (form, "other", "many"):
        if name in forms:
            return forms[name]
    raise ValueError(f"plural: no form {form!r} among {sorted(forms)}")


@pass_context
def _format_percent(context: Context, share: float, lang: str | None = None) -> str:
    """A fraction as a percentage by the locale (0.3 → "30 %" in Russian, "30%" in English),
    one decimal only when there is one."""
    locale = _LOCALES[_lang(context, lang)]
    pattern = locale.percent_formats[None].pattern.replace("#,##0", "#,##0.#", 1)
    return format_percent(share, pattern, locale=locale)


@pass_context
def _format_number(
    context: Context, value: float, sign: bool = False, lang: str | None = None
) -> str:
    """A number with at most one decimal by the locale (12,5 / 12.5); with `sign`, "+" before a
    positive one (a change in percentage points)."""
    pattern = "+#,##0.#;-#,##0.#" if sign else "#,##0.#"
    return format_decimal(value, pattern, locale=_LOCALES[_lang(context, lang)])


def _format_birthday(value: Any, lang: str = DEFAULT_LANGUAGE) -> str:
    text = f"{value.day:02d}.{value.month:02d}"
    return f"{text}.{value.year}" if value.year else text


def _format_day(value: date | datetime, lang: str = DEFAULT_LANGUAGE) -> str:
    """A day as a customer picks it: "ср 25.11" / "Wed 25 Nov"."""
    lang = lang if lang in _LOCALES else DEFAULT_LANGUAGE
    return format_date(value, _DAY[lang], locale=_LOCALES[lang])


class _Bundled(BaseLoader):
    """The templates the package ships, through importlib.resources (an installed wheel, or the
    source tree in an editable install)."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool]]:
        resource = self.root
        for part in template.split("/"):
            resource = resource / part
        if not resource.is_file():
            raise TemplateNotFound(template)
        return resource.read_text(encoding="utf-8"), str(resource), lambda: True


class Renderer:
    def __init__(self, tz: tzinfo, directories: list[Path] | None = None) -> None:
        """Templates from `directories` (tests), or the owner's `data/templates/` of the folder
        the bot runs in over the bundled ones."""
        self.tz = tz
        loader: BaseLoader = (
            FileSystemLoader([str(d) for d in directories])
            if directories
            else ChoiceLoader(
                [FileSystemLoader(str(Path.cwd() / OVERRIDES)), _Bundled(resources.files(BUNDLED))]
            )
        )
        self.env = Environment(
            loader=loader,
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
        self.env.filters["plural"] = _plural
        self.env.filters["percent"] = _format_percent
        self.env.filters["number"] = _format_number
        self.env.filters["datetime"] = lambda value: format_datetime(
            value.astimezone(self.tz), _DATETIME, locale=_LOCALES[DEFAULT_LANGUAGE]
        )
        self.env.filters["day"] = _format_day
        self.env.filters["hhmm"] = lambda value: format_datetime(
            value.astimezone(self.tz), "HH:mm", locale=_LOCALES[DEFAULT_LANGUAGE]
        )
        self.env.filters["when"] = self._when
        # states compared by name in templates (`booking.state == BookingState.CONFIRMED`): the
        # same values the database checks; owner overrides comparing with strings still work
        self.env.globals.update(BookingState=BookingState, BroadcastState=BroadcastState)

    def _when(self, value: datetime, lang: str = DEFAULT_LANGUAGE) -> str:
        """A visit's time: "ср 25.11 в 10:00" / "Wed 25 Nov at 10:00", in the business's time zone."""
        lang = lang if lang in _LOCALES else DEFAULT_LANGUAGE
        return format_datetime(value.astimezone(self.tz), _WHEN[lang], locale=_LOCALES[lang])

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
