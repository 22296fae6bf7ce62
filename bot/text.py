"""Text clean-up shared by the format adapters."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

# Status-page boilerplate that says nothing about this incident. Only short updates are tested, so a long
# update that starts with one of these phrases is kept.
_STOCK = re.compile(
    r"^(we are (currently )?(investigating|looking into|aware of)|we('re| are) continuing to (investigate|monitor|work)"
    r"|this incident has been resolved|the issue has been resolved|a fix has been implemented"
    r"|we have identified the issue|the issue has been identified|we are monitoring|we're investigating"
    r"|we are working on a fix|everything is operating normally)",
    re.IGNORECASE,
)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("p", "br", "li", "div", "h1", "h2", "h3", "h4", "tr"):
            self.parts.append("\n")


def html_to_text(html: str) -> str:
    if "<" not in html:
        return squash(html)
    p = _Text()
    p.feed(html)
    p.close()
    return squash("".join(p.parts))


def squash(text: str) -> str:
    """Collapse runs of spaces and blank lines."""
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n", text).strip()


def is_stock(update: str) -> bool:
    return len(update.split()) < 25 and bool(_STOCK.match(update.strip()))


def informative(updates: list[str]) -> list[str]:
    return [u for u in (squash(x) for x in updates) if u and not is_stock(u)]


# Characters that carry no meaning in an incident and do harm: NUL (PostgreSQL cannot store it), lone UTF-16
# surrogates (a JSON escape of half an emoji: no UTF-8 encoding exists, so every later write fails), bidi controls
# (they reorder how a post reads) and zero-width characters (they hide text and split secrets past redaction).
_UNSAFE = re.compile("[\x00\ud800-\udfff\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u061c]")
MAX_JSON_DEPTH = 64  # deeper than any sender's payload; past ~300 levels serialising it fails


class TooDeep(ValueError):
    """A JSON value nested deeper than MAX_JSON_DEPTH."""


def _clean_str(text: str) -> str:
    return _UNSAFE.sub(lambda m: "\ufffd" if "\ud800" <= m.group() <= "\udfff" else "", text)


def json_depth(value: Any) -> int:
    """How deeply a JSON value nests (a scalar is 0), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def clean(value: Any) -> Any:
    """Untrusted text (a JSON value or a string) made safe to store and show, wherever it enters: unsafe
    characters removed, lone surrogates replaced by U+FFFD, keys too. TooDeep past MAX_JSON_DEPTH levels."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise TooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return _clean(value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def usable_text(text: str | None, min_words: int = 5) -> bool:
    """Free text worth showing an engineer: enough words, not a degenerate repetition."""
    if not text:
        return False
    words = text.split()
    if len(words) < min_words or max(len(w) for w in words) > 40:
        return False
    return len({w.lower() for w in words}) / len(words) >= 0.6
