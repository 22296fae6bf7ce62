"""Redaction of secrets and personal data before ticket text leaves the process.

A compact pattern set for the common cases (tokens, keys, credentials in URLs, emails, IPs, phones, cards).
Each match becomes a typed placeholder such as [EMAIL_1], stable within one text.
"""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "PRIVATE_KEY",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    ),
    ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("URL_CREDENTIALS", re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")),
    ("API_KEY", re.compile(r"\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_-]{16,}")),
    ("API_KEY", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("API_KEY", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("API_KEY", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("API_KEY", re.compile(r"\bAIza[0-9A-Za-z_-]{30,}")),
    ("BEARER_TOKEN", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/-]{16,}=*")),
    ("PASSWORD", re.compile(r"(?i)(?<=password=)[^\s&;]+|(?<=pwd=)[^\s&;]+|(?<=secret=)[^\s&;]+")),
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("IP_ADDRESS", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("CARD_NUMBER", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("PHONE", re.compile(r"(?<!\w)\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)")),
]


def _luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def redact(text: str, extra_patterns: list[str] | None = None) -> tuple[str, dict[str, int]]:
    """Return the redacted text and how many values of each kind were replaced."""
    counts: dict[str, int] = {}
    seen: dict[str, str] = {}
    patterns = _PATTERNS + [("CUSTOM", re.compile(p)) for p in (extra_patterns or [])]

    for kind, pattern in patterns:

        def sub(m: re.Match[str], kind: str = kind) -> str:
            value = m.group(0)
            if kind == "CARD_NUMBER" and not _luhn_ok(value):
                return value
            if value not in seen:
                counts[kind] = counts.get(kind, 0) + 1
                seen[value] = f"[{kind}_{counts[kind]}]"
            return seen[value]

        text = pattern.sub(sub, text)
    return text, counts
