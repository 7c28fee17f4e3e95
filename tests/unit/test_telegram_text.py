"""Telegram's length rules: UTF-16 units after entity parsing, and cuts that keep HTML valid."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from html import escape

import pytest

from bot.telegram_text import (
    CALLBACK_DATA_BYTES,
    CAPTION_LIMIT,
    TEXT_LIMIT,
    card_messages,
    fit_card,
    fit_shortened,
    shorten_fields,
    split_html,
    truncate_html,
    truncate_text,
    utf16_len,
    visible,
    visible_len,
)

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme, 11 units
THUMB = "👍🏽"  # emoji + skin tone: one grapheme, 4 units
FLAG = "🇷🇺"  # two regional indicators: one grapheme, 4 units
HEART = "❤\ufe0f"  # BMP + variation selector: one grapheme, 2 units

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|amp|lt|gt|quot);")


def well_formed(html: str) -> bool:
    """Every tag closed in order, no stray `<`, `>` or `&`: what Telegram's parser accepts."""
    stack: list[str] = []
    at = 0
    for match in _TAG.finditer(html):
        text = _ENTITY.sub("", html[at : match.start()])
        if any(c in text for c in "<>&"):
            return False
        at = match.end()
        closing, name = match.group(1), match.group(2)
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack and not any(c in _ENTITY.sub("", html[at:]) for c in "<>&")


def pieces_of(original: str, parts: list[str]) -> bool:
    """The parts show the original's text in order, losing only whitespace at cuts."""
    pattern = r"\s*" + r"\s*".join(re.escape(visible(part)) for part in parts) + r"\s*"
    return re.fullmatch(pattern, visible(original), flags=re.DOTALL) is not None


def test_limits() -> None:
    assert (TEXT_LIMIT, CAPTION_LIMIT, CALLBACK_DATA_BYTES) == (4096, 1024, 64)


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("abc", 3),
        ("Привет", 6),
        ("😀", 2),
        ("a😀b", 4),
        (FAMILY, 11),
        (THUMB, 4),
        (FLAG, 4),
        (HEART, 2),
        ("𝕏", 2),
    ],
)
def test_utf16_len(text: str, units: int) -> None:
    assert utf16_len(text) == units


@pytest.mark.parametrize(
    ("html", "shown"),
    [
        ("<b>Anna</b> &amp; <i>Bob</i>", "Anna & Bob"),
        ("&lt;b&gt;x&lt;/b&gt; &quot;q&quot; &#39;s&#39;", "<b>x</b> \"q\" 's'"),
        ("&#x1F600; &#128512;", "😀 😀"),
        ('<a href="https://e.x/?a=1&amp;b=2">link</a>', "link"),
        ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st"),
        ('<pre><code class="language-python">x &lt; 1</code></pre>', "x < 1"),
        (
            "a &nbsp; b &#0; &#xD800;",
            "a &nbsp; b &#0; &#xD800;",
        ),  # not Telegram entities: shown as typed
        ("Tom & Jerry", "Tom & Jerry"),
        ("", ""),
    ],
)
def test_visible(html: str, shown: str) -> None:
    assert visible(html) == shown


def test_visible_len_counts_entities_once_and_astral_twice() -> None:
    text = "&" * 400 + "x" * 3696  # 4,096 characters the customer typed
    html = escape(text)
    assert len(html) == 5696 and visible_len(html) == 4096
    assert split_html(html) == [html]  # fits: not cut to ~2,900 after escaping
    assert visible_len(escape("😀" * 2049)) == 4098  # 2,049 characters, yet too long


def test_split_empty_and_fitting() -> None:
    assert split_html("") == []
    assert split_html("  \n ") == []
    assert split_html("<b></b>") == []
    assert split_html("<b>short</b>\n") == ["<b>short</b>\n"]


def test_split_prefers_paragraphs_then_lines_then_spaces() -> None:
    para = "a" * 30 + "\n\n" + "b" * 10 + "\n" + "c" * 5 + " " + "d" * 20
    assert split_html(para, 50) == ["a" * 30, "b" * 10 + "\n" + "c" * 5 + " " + "d" * 20]
    line = "a" * 30 + "\n" + "b" * 10 + " " + "c" * 20
    assert split_html(line, 45) == ["a" * 30, "b" * 10 + " " + "c" * 20]
    words = "word " * 20
    assert split_html(words, 22) == ["word word word word"] * 4 + [
        "word word word word "
    ]  # the end is no cut
    # a paragraph break early in the window loses to a space late in it (no tiny parts)
    early = "a\n\n" + "b " * 30
    assert split_html(early, 20)[0] == "a\n\nb b b b b b b b b"


def test_split_cuts_a_word_only_when_there_is_no_whitespace() -> None:
    assert split_html("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_html("ok " + "y" * 30, 20) == ["ok", "y" * 20, "y" * 10]


def test_split_never_cuts_an_entity_or_a_surrogate_pair() -> None:
    html = escape('&<>"' * 10)
    parts = split_html(html, 7)
    assert all(well_formed(p) and visible_len(p) <= 7 for p in parts)
    assert "".join(visible(p) for p in parts) == '&<>"' * 10
    emoji = "😀" * 10  # 20 units: a limit of 5 holds two emoji, never two and a half
    assert split_html(emoji, 5) == ["😀😀"] * 5


@pytest.mark.parametrize("cluster", [FAMILY, THUMB, FLAG, HEART, "й", "e\u0301"])
def test_split_never_cuts_a_grapheme(cluster: str) -> None:
    text = cluster * 20
    limit = max(utf16_len(cluster) * 3 - 1, 2)
    parts = split_html(text, limit)
    assert all(visible_len(p) <= limit for p in parts)
    assert all(re.fullmatch(f"(?:{re.escape(cluster)})+", p) for p in parts), parts


def test_split_reopens_tags_with_their_attributes() -> None:
    html = '<b>bold <a href="https://e.x/?a=1&amp;b=2">' + "link " * 10 + "</a> tail</b> after"
    parts = split_html(html, 20)
    assert all(well_formed(p) for p in parts), parts
    assert parts[0].startswith('<b>bold <a href="https://e.x/?a=1&amp;b=2">')
    assert parts[1].startswith('<b><a href="https://e.x/?a=1&amp;b=2">link')
    assert parts[-2].endswith("link </a> tail</b>") and parts[-1] == "after"
    assert pieces_of(html, parts)


def test_split_leaves_no_empty_tags_at_a_cut() -> None:
    html = "x" * 15 + " <b>" + "y" * 10 + "</b>"
    assert split_html(html, 20) == ["x" * 15, "<b>" + "y" * 10 + "</b>"]
    html = "<i>" + "x" * 15 + "</i> <b> </b>\n\n<u>" + "y" * 10 + "</u>"
    assert split_html(html, 20) == ["<i>" + "x" * 15 + "</i>", "<u>" + "y" * 10 + "</u>"]


def test_split_a_huge_text() -> None:
    text = escape(("Привет 😀 & <мир> " * 3000).strip())
    parts = split_html(text)
    assert len(parts) == 14  # 53,999 units: 13 parts of ~4,094 and the rest
    assert all(visible_len(p) <= TEXT_LIMIT for p in parts)
    assert pieces_of(text, parts)


def test_split_refuses_a_limit_below_one_emoji() -> None:
    with pytest.raises(ValueError):
        split_html("abc", 1)


def test_truncate() -> None:
    assert truncate_html("<b>short</b>", 10) == "<b>short</b>"
    assert truncate_html("<b>Hello <i>world</i> again</b>", 10) == "<b>Hello <i>wor…</i></b>"
    assert truncate_html("Hello world again", 7) == "Hello…"  # no space before the ellipsis
    assert truncate_html("😀😀😀", 4) == "😀…"  # 2 + 1 ≤ 4; a second emoji would need 5
    assert truncate_html(escape("&&&&&"), 3) == "&amp;&amp;…"
    assert truncate_html(FAMILY * 2, 12) == FAMILY + "…"
    assert truncate_html(FAMILY * 2, 11) == "…"  # never a piece of a family
    assert (
        truncate_html("abcdef", 4, ellipsis=" [...]") == " [.."
    )  # even the ellipsis is cut to fit
    assert truncate_html("abcdef", 0) == ""
    assert truncate_html("abcdef", 4, ellipsis="") == "abcd"


def test_fit_card() -> None:
    card = "<b>Anna Petrova</b>\n+7 916 123-45-67"
    assert fit_card(card, "hello", 100) == card + "\n\nhello"
    body = "x" * 80
    fitted = fit_card(card, body, 100)
    assert fitted is not None and visible_len(fitted) == 100 and fitted.endswith("\n\n" + body)
    assert fitted.startswith("<b>Anna Petrova</b>\n+7 9…\n\n") and well_formed(fitted)
    assert fit_card(card, "y" * 99, 100) == "y" * 99  # no room even for an ellipsis of the card
    assert fit_card(card, "y" * 101, 100) is None  # the caller splits
    assert fit_card("", "hello", 100) == "hello"
    assert fit_card(card, escape("😀&" * 1365), TEXT_LIMIT) is not None  # 4,095 units


def test_card_messages() -> None:
    card = "<b>Anna</b> card"
    assert card_messages(card, "hi", 100) == [card + "\n\nhi"]
    assert card_messages(card, "", 100) == [card]
    body = "word " * 60  # 300 units
    parts = card_messages(card, body, 100)
    assert parts[0].startswith(card + "\n\nword")
    assert all(visible_len(p) <= 100 and well_formed(p) for p in parts)
    assert re.sub(r"\s+", "", "".join(visible(p) for p in parts[0:])) == re.sub(
        r"\s+", "", visible(card) + visible(body)
    )
    long_card = "<b>" + "c" * 500 + "</b>"
    parts = card_messages(long_card, body, 100)
    assert visible_len(parts[0]) <= 100 and visible(parts[0]).startswith(
        "c" * 47 + "…\n\nword"
    )  # half a message


def test_card_messages_with_a_fixed_card_room_split_the_body_alike() -> None:
    body = "word " * 60
    short = card_messages("<b>A</b>", body, 100, card_room=30)
    long = card_messages("<b>" + "B" * 80 + "</b> resolved", body, 100, card_room=30)
    assert [p.split("\n\n", 1)[1] for p in short[:1]] == [p.split("\n\n", 1)[1] for p in long[:1]]
    assert short[1:] == long[1:] and all(visible_len(p) <= 100 for p in short + long)
    assert long[0].startswith("<b>" + "B" * 27 + "…</b>\n\n")  # 28 units + the separator


def test_truncate_text() -> None:
    assert truncate_text("Анна", 10) == "Анна"
    assert truncate_text("Tom & <Jerry>", 8) == "Tom & <…"  # plain text in, plain text out
    assert truncate_text(FAMILY + "ab", 12) == FAMILY + "…"
    assert truncate_text("😀😀", 3) == "😀…"


@dataclass(frozen=True)
class _Card:
    name: str
    note: str


def test_shorten_fields_shortens_the_most_expendable_first() -> None:
    def render(card: _Card) -> str:
        return f"<b>{escape(card.name)}</b>\n📝 {escape(card.note)}"

    card = _Card("Анна & Co", "😀" * 100)
    assert shorten_fields(render, card, ("note", "name"), 300) == render(card)
    text = shorten_fields(render, card, ("note", "name"), 60)
    assert (
        visible_len(text) <= 60
        and text.startswith("<b>Анна &amp; Co</b>\n📝 😀")
        and text.endswith("…")
    )
    text = shorten_fields(render, _Card("Я" * 50, "x"), ("note", "name"), 30)
    assert visible_len(text) <= 30 and text.startswith("<b>ЯЯЯ") and "…</b>" in text
    assert visible_len(shorten_fields(render, card, (), 10)) <= 10  # at worst the whole is cut


def test_fit_shortened_gives_every_text_the_same_cap() -> None:
    notes = ["a" * 50, "b" * 10, "c" * 200]

    def render(cap: int | None) -> str:
        return "\n".join(f"• {escape(n if cap is None else truncate_text(n, cap))}" for n in notes)

    assert fit_shortened(render, 200, 1000) == render(None)
    text = fit_shortened(render, 200, 100)
    assert visible_len(text) <= 100 and text.splitlines() == [
        "• " + "a" * 40 + "…",
        "• " + "b" * 10,
        "• " + "c" * 40 + "…",
    ]
    assert visible_len(fit_shortened(render, 200, 5)) <= 5


# -- properties over random HTML ----------------------------------------------------------------

ALPHABET = (
    list("abc xyz")
    + list("Привет мир")
    + ["&", "<", ">", '"', "'", "\n", "\n\n", "  ", "😀", FAMILY, THUMB, FLAG, HEART, "e\u0301"]
)


def random_html(rng: random.Random, depth: int = 0) -> str:
    out: list[str] = []
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.15 and depth < 3:
            tag = rng.choice(["b", "i", "u", "s", "code", "tg-spoiler"])
            out.append(f"<{tag}>{random_html(rng, depth + 1)}</{tag}>")
        elif roll < 0.2 and depth < 3:
            href = escape(f'https://e.x/?q={rng.randint(0, 99)}&r="{rng.choice(ALPHABET)}"')
            out.append(f'<a href="{href}">{random_html(rng, depth + 1)}</a>')
        else:
            out.append(escape("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 30)))))
    return "".join(out)


@pytest.mark.parametrize("seed", range(200))
def test_split_properties(seed: int) -> None:
    rng = random.Random(seed)
    html = "".join(random_html(rng) for _ in range(rng.randint(1, 6)))
    limit = rng.choice([12, 13, 20, 37, 64, 100, 500])
    assert well_formed(html)
    parts = split_html(html, limit)
    assert parts, html
    assert all(visible_len(p) <= limit for p in parts), (limit, parts)
    assert all(well_formed(p) for p in parts), parts
    assert all(visible(p).strip() for p in parts)
    assert pieces_of(html, parts), (html, parts)
    for part in parts:  # no cluster cut in half at a part's edges
        shown = visible(part)
        assert not shown.startswith(("\u200d", "\ufe0f", "\u0301", "🏽")), part
        assert not shown.endswith("\u200d"), part
    if visible_len(html) <= limit:
        assert parts == [html]


@pytest.mark.parametrize("seed", range(200))
def test_truncate_properties(seed: int) -> None:
    rng = random.Random(seed)
    html = random_html(rng)
    limit = rng.randint(0, 60)
    cut = truncate_html(html, limit)
    assert visible_len(cut) <= limit and well_formed(cut)
    if visible_len(html) <= limit:
        assert cut == html
    else:
        shown = visible(cut)
        assert shown.endswith("…") or limit == 0
        assert visible(html).startswith(shown[:-1])


@pytest.mark.parametrize("seed", range(100))
def test_card_messages_properties(seed: int) -> None:
    rng = random.Random(seed)
    card, body = random_html(rng), "".join(random_html(rng) for _ in range(rng.randint(1, 5)))
    limit = rng.choice([64, 100, 300])
    parts = card_messages(card, body, limit)
    assert all(visible_len(p) <= limit and well_formed(p) for p in parts), parts
    body_shown = re.sub(r"\s+", "", visible(body))
    assert re.sub(r"\s+", "", "".join(visible(p) for p in parts)).endswith(body_shown)
    fitted = fit_card(card, body, limit)
    if fitted is not None:
        assert parts == [fitted] and fitted.endswith(body)
