"""Telegram's length rules for texts in its HTML parse mode, without Telegram types.

Telegram measures a message after parsing its entities, in UTF-16 code units: tags cost nothing,
`&amp;` costs one, an emoji outside the BMP costs two. Counting `len()` of the escaped text is wrong
both ways (a 4,096-character text with 400 `&` is 5,696 characters once escaped, yet fits; 3,910
characters with emoji do not). Everything here works on Telegram-HTML strings as the templates
render them, and cuts only between whole characters, never inside a tag, an entity, or an emoji
sequence joined by a zero-width joiner, and closes every tag it cuts through so each part parses
on its own.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from html import escape
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_BYTES = 64

# A grapheme cluster longer than this is cut anyway (a run of thousands of combining marks must
# not make a text unsplittable); real emoji sequences are at most ~20 units.
_MAX_CLUSTER = 64

_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}
_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<name>[a-zA-Z][a-zA-Z0-9-]*)(?P<attrs>(?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>"
    r"|&(?P<entity>#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|amp|lt|gt|quot);"
)

_TEXT, _OPEN, _CLOSE, _VOID = 0, 1, 2, 3
T = TypeVar("T", bound="DataclassInstance")


@dataclass(frozen=True, slots=True)
class _Token:
    raw: str  # as written in the HTML
    kind: int
    vis: str = ""  # the character it shows (text tokens only)
    name: str = ""  # tag name, lower case (tags only)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts it (an astral emoji is 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _entity(code: str) -> str | None:
    if code in _NAMED:
        return _NAMED[code]
    number = int(code[2:], 16) if code[1] in "xX" else int(code[1:])
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return None  # not a character: shown as written
    return chr(number)


def _tokens(html: str) -> list[_Token]:
    out: list[_Token] = []
    at = 0
    for match in _TOKEN.finditer(html):
        out.extend(_Token(c, _TEXT, c) for c in html[at : match.start()])
        at = match.end()
        raw = match.group(0)
        if match.group("entity") is not None:
            char = _entity(match.group("entity"))
            if char is None:
                out.extend(_Token(c, _TEXT, c) for c in raw)
            else:
                out.append(_Token(raw, _TEXT, char))
        elif match.group("close"):
            out.append(_Token(raw, _CLOSE, name=match.group("name").lower()))
        elif match.group("attrs").rstrip().endswith("/"):
            out.append(_Token(raw, _VOID, name=match.group("name").lower()))
        else:
            out.append(_Token(raw, _OPEN, name=match.group("name").lower()))
    out.extend(_Token(c, _TEXT, c) for c in html[at:])
    return out


def visible(html: str) -> str:
    """The text Telegram shows for a Telegram-HTML string: tags removed, entities unescaped."""
    return "".join(token.vis for token in _tokens(html))


def visible_len(html: str) -> int:
    """What Telegram's length limits count: UTF-16 units of the visible text."""
    return utf16_len(visible(html))


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _extends(previous: str, char: str, regional_run: int) -> bool:
    """Whether `char` belongs to the grapheme cluster that ends with `previous` (the cheap rules:
    marks, joiners, variation selectors, skin tones, tag sequences, flag pairs, CR LF)."""
    if previous == "\u200d" or (previous == "\r" and char == "\n"):
        return True
    code = ord(char)
    if (
        code == 0x200D
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or 0xE0100 <= code <= 0xE01EF
    ):
        return True
    if 0x1F1E6 <= code <= 0x1F1FF:
        return 0x1F1E6 <= ord(previous) <= 0x1F1FF and regional_run % 2 == 1
    return unicodedata.category(char).startswith("M")


@dataclass(slots=True)
class _Cluster:
    start: int  # first token
    end: int  # one past the last token
    units: int
    space: bool
    newlines: int


def _clusters(tokens: list[_Token], cap: int) -> list[_Cluster]:
    """Visible text as grapheme clusters (never across a tag), none longer than `cap` units
    unless it is a single character."""
    out: list[_Cluster] = []
    current: _Cluster | None = None
    previous = ""
    regional_run = 0
    for index, token in enumerate(tokens):
        if token.kind != _TEXT:
            current, previous, regional_run = None, "", 0
            continue
        char = token.vis
        units = _units(char)
        if (
            current is not None
            and current.end == index
            and current.units + units <= cap
            and _extends(previous, char, regional_run)
        ):
            current.end = index + 1
            current.units += units
            current.space = False
        else:
            current = _Cluster(index, index + 1, units, char.isspace(), 0)
            out.append(current)
            regional_run = 0
        if char == "\n":
            current.newlines += 1
        regional_run = regional_run + 1 if 0x1F1E6 <= ord(char) <= 0x1F1FF else 0
        previous = char
    return out


class _Writer:
    """Emits token ranges as parts, closing the tags open at a cut and reopening them after it."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.stack: list[_Token] = []  # open tags

    def _apply(self, token: _Token) -> None:
        if token.kind == _OPEN:
            self.stack.append(token)
        elif token.kind == _CLOSE:
            for depth in range(len(self.stack) - 1, -1, -1):
                if self.stack[depth].name == token.name:
                    del self.stack[depth:]
                    break

    def skip(self, start: int, end: int) -> None:
        """Tokens that are in no part (whitespace at a cut): their tags still open and close."""
        for token in self.tokens[start:end]:
            self._apply(token)

    def part(self, start: int, end: int, tail: str = "") -> str:
        pieces = [tag.raw for tag in self.stack]
        for token in self.tokens[start:end]:
            self._apply(token)
            pieces.append(token.raw)
        pieces.append(tail)
        pieces.extend(f"</{tag.name}>" for tag in reversed(self.stack))
        return "".join(pieces)


def _split(html: str, limit: int, first_limit: int) -> list[str]:
    """`split_html` with a different budget for the first part (room left beside a card); the
    first part is "" when not one character fits in it."""
    tokens = _tokens(html)
    clusters = _clusters(tokens, max(2, min(_MAX_CLUSTER, limit)))
    if not any(not c.space for c in clusters):
        return []
    ends = [0]  # ends[i]: units of clusters[:i]
    for cluster in clusters:
        ends.append(ends[-1] + cluster.units)
    # whitespace runs, each as (first cluster, one past the last, newlines in it)
    runs: list[tuple[int, int, int]] = []
    for index, cluster in enumerate(clusters):
        if not cluster.space:
            continue
        if runs and runs[-1][1] == index:
            first, _, newlines = runs[-1]
            runs[-1] = (first, index + 1, newlines + cluster.newlines)
        else:
            runs.append((index, index + 1, cluster.newlines))
    run_starts = [run[0] for run in runs]

    writer = _Writer(tokens)
    parts: list[str] = []
    begin, token_begin, budget = 0, 0, first_limit
    while True:
        stop = bisect_right(ends, ends[begin] + budget) - 1  # clusters[begin:stop] fit
        if stop >= len(clusters):
            parts.append(writer.part(token_begin, len(tokens)))
            return parts
        cut = _choose_cut(begin, stop, budget, ends, runs, run_starts)
        end = cut
        while end > begin and clusters[end - 1].space:
            end -= 1
        following = cut
        while following < len(clusters) and clusters[following].space:
            following += 1
        if end > begin:
            parts.append(writer.part(token_begin, clusters[end - 1].end))
            writer.skip(
                clusters[end - 1].end,
                clusters[following].start if following < len(clusters) else len(tokens),
            )
        elif cut == begin:  # not one character fits: only when the first part's budget is tiny
            parts.append("")
            budget = limit
            continue
        else:  # nothing but whitespace before the cut
            writer.skip(
                token_begin, clusters[following].start if following < len(clusters) else len(tokens)
            )
        if following == len(clusters):
            return parts
        begin, token_begin, budget = following, clusters[following].start, limit


def _choose_cut(
    begin: int,
    stop: int,
    budget: int,
    ends: list[int],
    runs: list[tuple[int, int, int]],
    run_starts: list[int],
) -> int:
    """Where a part that may end no later than cluster `stop` should end: at the last paragraph
    break, else line break, else space that keeps at least half the budget; else at the last
    whitespace at all (a short part rather than a cut word); else at `stop`."""
    floor = bisect_right(ends, ends[begin] + budget // 2) - 1  # a cut here keeps half
    best: dict[int, int] = {}
    index = bisect_right(run_starts, stop) - 1
    if index < 0 or run_starts[index] <= begin:
        return stop
    latest = run_starts[index]
    while index >= 0 and run_starts[index] > begin and run_starts[index] >= floor:
        newlines = runs[index][2]
        kind = 2 if newlines >= 2 else 1 if newlines else 0
        best.setdefault(kind, run_starts[index])
        if kind == 2:
            break
        index -= 1
    for kind in (2, 1, 0):
        if kind in best:
            return best[kind]
    return latest


def split_html(html: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Parts of a Telegram-HTML text, each within `limit` visible UTF-16 units and valid on its own.

    Cuts at the last paragraph break, else line break, else space that keeps at least half a
    part, else at the last whitespace, else between two characters (grapheme clusters); whitespace
    at a cut is dropped. A text that fits comes back unchanged; an empty one gives [].
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 (an emoji is 2 units)")
    if visible_len(html) <= limit:
        return [html] if visible(html).strip() else []
    return [part for part in _split(html, limit, limit) if part]


def truncate_html(html: str, limit: int, ellipsis: str = "…") -> str:
    """The longest prefix of `html` that fits `limit` visible units with `ellipsis` (Telegram HTML)
    after it, tags closed; `html` itself when it fits."""
    if visible_len(html) <= limit:
        return html
    budget = limit - visible_len(ellipsis)
    if budget < 0:
        return truncate_html(ellipsis, limit, "")
    tokens = _tokens(html)
    clusters = _clusters(tokens, _MAX_CLUSTER)
    used = end = 0
    while end < len(clusters) and used + clusters[end].units <= budget:
        used += clusters[end].units
        end += 1
    while end > 0 and clusters[end - 1].space:
        end -= 1
    return _Writer(tokens).part(0, clusters[end - 1].end if end else 0, ellipsis)


def fit_card(
    card_html: str, body_html: str, limit: int = TEXT_LIMIT, separator: str = "\n\n"
) -> str | None:
    """A card header and a body in one message, the card shortened so the body fits whole.

    None when the body alone does not fit (the caller splits it: see `card_messages`). When not
    even an ellipsis of the card fits beside the body, the body comes alone.
    """
    body = visible_len(body_html)
    if body > limit:
        return None
    room = limit - body - visible_len(separator)
    card = truncate_html(card_html, room) if room > visible_len("…") else ""
    if not visible(card).strip():
        return body_html
    return f"{card}{separator}{body_html}"


def card_messages(
    card_html: str,
    body_html: str,
    limit: int = TEXT_LIMIT,
    separator: str = "\n\n",
    card_room: int | None = None,
) -> list[str]:
    """A card and a body as few messages as possible: one (`fit_card`) when the body fits, else the
    card with the beginning of the body, then the rest of the body. Never drops a word of the body.

    When the body needs more than one message the card is shortened to `card_room` units with
    the separator (default: half a message) and, given `card_room`, the body's parts do not
    depend on the card: a message edited later with a changed card (a complaint resolved) still
    holds the same words as before, and the following messages need no edit.
    """
    if not visible(body_html).strip():
        return [truncate_html(card_html, limit)] if visible(card_html).strip() else []
    joined = fit_card(card_html, body_html, limit, separator)
    if joined is not None:
        return [joined]
    room = limit // 2 if card_room is None else card_room
    card = truncate_html(card_html, max(room - visible_len(separator), 0))
    first = limit - (room if card_room is not None else visible_len(card) + visible_len(separator))
    parts = _split(body_html, limit, first)
    if not visible(card).strip():
        return [part for part in parts if part]
    if parts and parts[0]:
        parts[0] = f"{card}{separator}{parts[0]}"
    else:
        parts[:1] = [card]
    return parts


def truncate_text(text: str, limit: int, ellipsis: str = "…") -> str:
    """Plain text (a name, a note, a button label) cut to `limit` UTF-16 units with `ellipsis`,
    between whole characters and emoji sequences; unchanged when it fits."""
    if utf16_len(text) <= limit:
        return text
    return visible(truncate_html(escape(text, quote=False), limit, escape(ellipsis, quote=False)))


def shorten_fields(
    render: Callable[[T], str], value: T, fields: Sequence[str], limit: int = TEXT_LIMIT
) -> str:
    """`render(value)` within `limit` visible units: the plain-text `fields` of the dataclass
    `value` (free text such as a note or a name, most expendable first) are shortened one after
    another by what is over; if that is not enough, the rendered text itself is truncated.
    Templates escape the fields, so a field's length is what it adds to the visible length."""
    text = render(value)
    for name in fields:
        over = visible_len(text) - limit
        if over <= 0:
            return text
        current = getattr(value, name)
        if not current:
            continue
        value = replace(value, **{name: truncate_text(current, max(utf16_len(current) - over, 1))})
        text = render(value)
    return truncate_html(text, limit)


def fit_shortened(
    render: Callable[[int | None], str], longest: int, limit: int = TEXT_LIMIT
) -> str:
    """A message listing several free texts (comments, notes), each cut to the same number of
    units, as many as let the whole fit: `render(cap)` renders with every free text cut to `cap`
    units (`truncate_text`), `render(None)` whole; `longest` is the longest text's length."""
    text = render(None)
    if visible_len(text) <= limit:
        return text
    low, high = 1, max(longest - 1, 1)  # the largest cap that fits lies in [low, high]
    if visible_len(render(low)) > limit:
        return truncate_html(render(low), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if visible_len(render(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return render(low)
