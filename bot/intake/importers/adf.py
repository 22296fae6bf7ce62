"""Atlassian Document Format (the JSON trees Jira Cloud's REST API v3 gives for descriptions and comments) read as
plain text: a line per paragraph, heading, list item and code line; a mention as its `@name`, a link as its text
and address, a card as its address, a date as the day. A node type not known here keeps the text under it, so a
new Atlassian node loses its formatting, never its words. Jira Server/Data Center (API v2) gives strings instead:
`body_text` reads those as HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.text import html_to_text, squash

# Nodes that end a line: each starts on its own.
_BLOCKS = {
    "paragraph", "heading", "blockquote", "codeBlock", "panel", "rule", "mediaSingle", "mediaGroup",
    "expand", "nestedExpand", "decisionList", "taskList", "tableRow", "bodiedExtension",
}  # fmt: skip
_MAX_DEPTH = (
    64  # deeper than any document Jira's editor writes; a hostile tree stops here, not in a recursion error
)


def body_text(body: object) -> str:
    """A Jira text field as plain text: ADF (a dict, API v3), or wiki text/HTML (a string, API v2); else empty."""
    if isinstance(body, dict):
        return adf_to_text(body)
    if isinstance(body, str):
        return html_to_text(body)
    return ""


def adf_to_text(doc: dict[str, Any]) -> str:
    parts: list[str] = []
    _walk(doc, parts, 0, "")
    lines = (squash(line) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


def _inline(node: dict[str, Any]) -> str:
    kind, attrs = node.get("type"), node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
    if kind == "text":
        text = str(node.get("text") or "")
        href = next(
            (
                str((m.get("attrs") or {}).get("href") or "")
                for m in node.get("marks") or []
                if isinstance(m, dict) and m.get("type") == "link"
            ),
            "",
        )
        return f"{text} ({href})" if href and href != text else text
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        name = str(attrs.get("text") or "")
        return name if name.startswith("@") or not name else f"@{name}"
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in {"inlineCard", "blockCard", "embedCard"}:
        return f" {attrs.get('url') or ''} "
    if kind == "date":
        try:
            return f" {datetime.fromtimestamp(int(attrs.get('timestamp')) / 1000, UTC).date().isoformat()} "
        except (TypeError, ValueError, OverflowError, OSError):
            return ""
    if kind == "status":
        return str(attrs.get("text") or "")
    return ""


def _walk(node: object, parts: list[str], depth: int, prefix: str) -> None:
    """Appends `node`'s text to `parts`; `prefix` (a list mark) goes before the first line it starts."""
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return
    kind = node.get("type")
    attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
    children = [c for c in node.get("content") or [] if isinstance(c, dict)]
    if kind in {"bulletList", "orderedList"}:
        start = attrs.get("order", 1) if kind == "orderedList" else None
        for i, item in enumerate(children):
            mark = f"{start + i}. " if isinstance(start, int) else "- "
            _walk(item, parts, depth + 1, prefix + mark)
        return
    if kind in {"tableCell", "tableHeader"}:  # a row on one line, its cells apart
        cell: list[str] = []
        for child in children:
            _walk(child, cell, depth + 1, "")
        parts.append(" ".join("".join(cell).split()) + " | ")
        return
    leaf = _inline(node)
    if leaf or kind in {"text", "hardBreak"}:
        parts.append(leaf)
        return
    block = kind in _BLOCKS
    if block:
        parts.append("\n" + prefix)
    if kind in {"expand", "nestedExpand"} and attrs.get("title"):
        parts.append(f"{attrs['title']}\n")
    if not children and isinstance(node.get("text"), str):  # an unknown leaf that carries text
        parts.append(node["text"])
    for i, child in enumerate(children):  # a list item's first block takes its mark; a nested list, indented
        _walk(child, parts, depth + 1, "" if block else prefix if i == 0 else " " * len(prefix))
    if block:
        parts.append("\n")
