"""Which of a ticket's words a draft may show as evidence for a mitigation action.

The action classifier's strongest words for an action are often not evidence at all: a model name ("gpt 4o"), a
clock ("05"), a stop-word pair ("for gpt", "utc and"), a word every report uses ("reports", "api"), or a word the
ticket denies ("deployment" in "No deployment announced"). Shown to an engineer, they change no one's mind. A word
is shown only when it carries the action's meaning: it shares a stem with the action's own vocabulary in the
taxonomy (its title, description and keywords, which operators edit), and the ticket asserts it.
"""

from __future__ import annotations

import re

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from bot.taxonomy import Taxonomy
from bot.triage.negation import MARK, asserted

# Words of the vocabulary that name what every GenAI incident is about, not what was done to it.
_GENERIC = frozenset(
    {"model", "models", "version", "previous", "service", "services", "affected", "issue", "request", "requests",
     "rate", "work", "incoming", "action", "temporarily", "taken", "moved", "brought", "online", "added", "adding",
     "state", "impacted", "components", "additional"}
)  # fmt: skip
_SUFFIX = re.compile(r"(?:ations?|ments?|ings?|ed|es|s)$")
_WORD = re.compile(r"[a-z]+")
_AGENT = frozenset({"er", "ers", "or", "ors"})
MIN_STEM = 4  # "use" is no stem of "user"; "roll" is of "rollout" and "rolled"


def stem(word: str) -> str:
    """A crude stem, enough to match "deployment", "deployed" and "deploy"."""
    w = word.lower()
    s = _SUFFIX.sub("", w)
    return s if len(s) >= MIN_STEM else w


def _related(a: str, b: str) -> bool:
    """One stem extends the other ("roll" and "rollout"), but not into the thing that does it: a "router" is no
    traffic "routed", a "server" nothing "served"."""
    short, long_ = sorted((a, b), key=len)
    return len(short) >= MIN_STEM and long_.startswith(short) and long_[len(short) :] not in _AGENT


class ActionTerms:
    def __init__(self, taxonomy: Taxonomy) -> None:
        self.stems: dict[str, set[str]] = {}
        if taxonomy.mitigation is None:
            return
        for action, cat in taxonomy.mitigation.categories.items():
            text = " ".join([cat.title, cat.description, *cat.keywords]).lower()
            self.stems[action] = {
                stem(w) for w in _WORD.findall(text) if w not in ENGLISH_STOP_WORDS and w not in _GENERIC
            }

    def is_evidence(self, action: str, term: str, ticket_text: str) -> bool:
        """Whether `term` (a word or two of the ticket, as the classifier's vocabulary has it) may be shown as the
        ticket's words for `action`."""
        words = term.lower().split()
        if not words or any(ch.isdigit() for ch in term) or any(w.startswith(MARK) for w in words):
            return False
        if words[0] in ENGLISH_STOP_WORDS or words[-1] in ENGLISH_STOP_WORDS:  # "for gpt", "utc and"
            return False
        vocab = self.stems.get(action, set())
        meant = any(
            _related(stem(w), v)
            for w in words
            if w not in ENGLISH_STOP_WORDS and w not in _GENERIC
            for v in vocab
        )
        return meant and asserted(term, ticket_text)
