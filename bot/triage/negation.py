"""Negated and hypothetical mentions: "No deployment announced", "not a config change", "the deploy was ruled out",
"if a rollout caused this". A word inside such a scope denies (or only supposes) the thing it names, so it must not
count as evidence for it: the classifiers see it as a token of its own (`not_deployment`), and no draft shows it as
the ticket's words for an action.

The rule is NegEx's (Chapman et al., 2001), cut down to incident prose: a cue opens a scope of at most SCOPE words
that ends early at a clause boundary (punctuation, "but", "however", ...); a few cues look backwards ("... was ruled
out"); pseudo-cues ("not only", "no longer") open none.
"""

from __future__ import annotations

import re

SCOPE = 5  # words a cue reaches, as in NegEx
MARK = "not_"

_PSEUDO = r"not only|not just|no doubt|no longer|not yet|nothing but"
_BEFORE = (
    r"no|not|never|without|none|neither|nor|cannot|can't|won't|isn't|wasn't|aren't|weren't|don't|doesn't|didn't"
    r"|hasn't|haven't|hadn't|couldn't|shouldn't|wouldn't|no sign of|no evidence of|ruled out|rule out|rules out"
    r"|unrelated to|not related to|rather than|instead of|if|whether|unless|in case"
)
_AFTER = r"(?:was|were|is|are|has been|have been|been)?\s*(?:ruled out|excluded|not the cause|not involved|unrelated)"
_CUE = re.compile(rf"\b(?:(?P<pseudo>{_PSEUDO})|(?P<before>{_BEFORE}))\b", re.IGNORECASE)
_POST = re.compile(rf"\b{_AFTER}\b", re.IGNORECASE)
# A clause boundary ends a scope: punctuation, a word that turns the sentence, or one that opens a clause of time or
# cause ("can't log in since the deployment" denies the login, not the deployment).
_STOP = re.compile(
    r"[.,;:!?()\n]|\b(?:but|however|although|though|yet|except|while|whereas|and then|since|after|because|due to"
    r"|following|when|until)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\b\w[\w'-]*\b")
_TOKEN = re.compile(r"\w+")  # as the TF-IDF vectorizer splits words: "gpt-4o" is two


def negated_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of `text` whose words a negation or hypothetical cue governs (sorted, may touch)."""
    spans: list[tuple[int, int]] = []
    for m in _CUE.finditer(text):
        if m.group("pseudo"):
            continue
        spans.append(_forward(text, m.end()))
    for m in _POST.finditer(text):
        spans.append(_backward(text, m.start()))
    return sorted(s for s in spans if s[1] > s[0])


def _forward(text: str, start: int) -> tuple[int, int]:
    stop = _STOP.search(text, start)
    limit = stop.start() if stop else len(text)
    words = list(_WORD.finditer(text, start, limit))[:SCOPE]
    return (start, words[-1].end()) if words else (start, start)


def _backward(text: str, end: int) -> tuple[int, int]:
    begin = 0
    for m in _STOP.finditer(text, 0, end):
        begin = m.end()
    words = list(_WORD.finditer(text, begin, end))[-SCOPE:]
    return (words[0].start(), end) if words else (end, end)


def mark_negated(text: str) -> str:
    """`text` with every word in a negated scope prefixed `not_`: "No deployment announced" -> "No not_deployment
    not_announced". The classifiers learn what a denial predicts without crediting the denied word."""
    spans = negated_spans(text)
    if not spans:
        return text
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        if any(a <= m.start() < b for a, b in spans) and not _CUE.fullmatch(m.group()):
            out.append(text[pos : m.start()])
            out.append(MARK + m.group())
            pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def asserted(term: str, text: str) -> bool:
    """Whether `term` (a word or phrase of the ticket, any case) occurs in `text` at least once outside a negated
    scope: "deployment" in "No deployment announced" does not; in "a deployment at 14:00, no rollback" it does."""
    spans = negated_spans(text)
    pattern = re.compile(r"\b" + r"\W+".join(map(re.escape, term.split())) + r"\b", re.IGNORECASE)
    return any(not any(a <= m.start() < b for a, b in spans) for m in pattern.finditer(text))
