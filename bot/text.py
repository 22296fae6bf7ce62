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


def without_nul(value: Any) -> Any:
    """A JSON value with NUL characters removed from every string (keys too). They carry no meaning in a ticket,
    and PostgreSQL cannot store them in text or JSON: a NUL in an id or title would otherwise fail the insert."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def usable_text(text: str | None, min_words: int = 5) -> bool:
    """Free text worth showing an engineer: enough words, not a degenerate repetition."""
    if not text:
        return False
    words = text.split()
    if len(words) < min_words or max(len(w) for w in words) > 40:
        return False
    return len({w.lower() for w in words}) / len(words) >= 0.6
