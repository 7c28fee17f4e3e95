"""Dates, weekdays, money and plurals in templates are Babel's (CLDR), in the template's language."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.rendering import Renderer

MOSCOW = ZoneInfo("Europe/Moscow")
VISIT = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # Wednesday, 10:00 in Moscow


@pytest.fixture(scope="module")
def render() -> Renderer:
    return Renderer(MOSCOW)


def _show(render: Renderer, source: str, **context: object) -> str:
    return render.env.from_string(source).render(**context)


@pytest.mark.parametrize(
    ("source", "ru", "en"),
    [
        ("{{ d | date(lang) }}", "25.11.2026", "25 Nov 2026"),
        ("{{ d | day(lang) }}", "ср 25.11", "Wed 25 Nov"),
        ("{{ t | when(lang) }}", "ср 25.11 в 10:00", "Wed 25 Nov at 10:00"),
        ("{{ t | datetime }}", "25.11.2026 10:00", "25.11.2026 10:00"),
        ("{{ t | hhmm }}", "10:00", "10:00"),
        ("{{ 150000 | money('₽', lang) }}", "1\u00a0500\u00a0₽", "1,500\u00a0₽"),
        ("{{ 350050 | money('₽', lang) }}", "3\u00a0500,50\u00a0₽", "3,500.50\u00a0₽"),
        ("{{ 90000 | money('₽', lang) }}", "900\u00a0₽", "900\u00a0₽"),
    ],
)
def test_formats(render: Renderer, source: str, ru: str, en: str) -> None:
    for lang, expected in (("ru", ru), ("en", en)):
        assert _show(render, source, lang=lang, d=date(2026, 11, 25), t=VISIT) == expected


def test_every_weekday_and_month(render: Renderer) -> None:
    week = [date(2026, 11, 23 + n) for n in range(7)]
    assert [_show(render, "{{ d | day('ru') }}", d=d).split()[0] for d in week] == [
        "пн",
        "вт",
        "ср",
        "чт",
        "пт",
        "сб",
        "вс",
    ]
    assert [_show(render, "{{ d | day('en') }}", d=d).split()[0] for d in week] == [
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
        "Sat",
        "Sun",
    ]
    assert [
        _show(render, "{{ d | date('en') }}", d=date(2026, m, 1)).split()[1] for m in range(1, 13)
    ] == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@pytest.mark.parametrize(
    ("n", "ru", "en"),
    [
        (0, "0 дней", "0 days"),
        (1, "1 день", "1 day"),
        (2, "2 дня", "2 days"),
        (4, "4 дня", "4 days"),
        (5, "5 дней", "5 days"),
        (11, "11 дней", "11 days"),
        (12, "12 дней", "12 days"),
        (21, "21 день", "21 days"),
        (22, "22 дня", "22 days"),
        (30, "30 дней", "30 days"),
        (111, "111 дней", "111 days"),
        (101, "101 день", "101 days"),
    ],
)
def test_plurals_in_the_templates_language(render: Renderer, n: int, ru: str, en: str) -> None:
    """The templates' `days` macro: the language comes from the template (also inside an imported macro)."""
    for lang, expected in (("ru", ru), ("en", en)):
        assert (
            _show(render, f'{{% from "{lang}/_macros.html" import days %}}{{{{ days(n) }}}}', n=n)
            == expected
        )
        source = (
            '{{ n }} {{ n | plural(one="день", few="дня", many="дней") }}'
            if lang == "ru"
            else '{{ n }} {{ n | plural(one="day", other="days") }}'
        )
        assert _show(render, source, n=n, lang=lang) == expected


def test_a_missing_plural_form_falls_back_to_other_then_many(render: Renderer) -> None:
    assert _show(render, '{{ 2 | plural(one="акции", many="акций") }}', lang="ru") == "акций"
    assert _show(render, '{{ 1 | plural(one="акции", many="акций") }}', lang="ru") == "акции"
    with pytest.raises(ValueError, match="no form 'other'"):
        _show(render, '{{ 2 | plural(one="offer") }}', lang="en")


TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_TAG = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}")


def _lines_joined_by_trim_blocks(text: str) -> list[int]:
    """Lines whose break trim_blocks eats: words then a block tag (`%}`, not `+%}`) at the line's
    end, and the next line starting with words (or a tag, then words) — two lines shown as one,
    e.g. "оценок не было" + "Подробнее: /stats". A break meant to go is marked `-%}` or `{%-`."""
    lines = text.split("\n")
    joined = []
    for number, (line, after) in enumerate(zip(lines, lines[1:], strict=False), 1):
        end, start = line.rstrip(), after.lstrip()
        if not end.endswith("%}") or end.endswith(("+%}", "-%}", "endmacro %}", "endset %}")):
            continue  # a macro's or a set's own whitespace is not the text's
        if "{%" not in end or not _TAG.sub("", end).strip():
            continue  # no words before it (or the end of a tag begun lines above)
        if start.startswith(("{%-", "{% macro", "{% set")) or not _TAG.sub("", start).strip():
            continue
        joined.append(number)
    return joined


def test_the_lint_sees_a_joined_line_and_passes_a_kept_one() -> None:
    assert _lines_joined_by_trim_blocks("A{% if p %}(x){% endif %}\nB") == [1]
    assert _lines_joined_by_trim_blocks("A: 1{% if p %}\nPaid{% endif %}\nB") == [1, 2]
    assert _lines_joined_by_trim_blocks("A{% if p %}(x){% endif +%}\nB") == []
    assert _lines_joined_by_trim_blocks("{% if p %}\nA\n{% endif %}\nB") == []


@pytest.mark.parametrize(
    "template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.glob("*/*.*"))
)
def test_no_two_lines_of_a_template_run_into_one(template: str) -> None:
    assert _lines_joined_by_trim_blocks((TEMPLATES / template).read_text()) == []
