"""Map a past incident's resolution text (how it was fixed) to the mitigation playbook that fits it.

Why: retrieved neighbours tell *how* similar incidents were fixed; naming the playbook that matches that fix lets
the bot point at a concrete, operator-maintained procedure instead of free text. Matching is by embedding
similarity against each playbook's title, description and keywords (front matter), so operators can steer it by
editing the playbook files, without code changes.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Protocol

import numpy as np
from pydantic import BaseModel

from bot.intake.text import is_stock, squash
from bot.playbooks import Playbook, PlaybookLibrary

# Chosen from the score distribution of resolutions outside the hand-checked sample (see evals/playbook-sample.md).
DEFAULT_MIN_SCORE = 0.40
MIN_WORDS = 5  # fewer informative words than this say nothing about how the incident was fixed
CACHE_SIZE = 4096

# Status-page boilerplate beyond the openers that bot.intake.text knows: sentences that say nothing about the fix.
_STOCK_EXTRA = re.compile(
    r"^(this (incident|issue) (has been|is now|was) (resolved|mitigated|fixed)|the issue (is|was) (now )?(resolved|fixed)"
    r"|the issue with .{0,120} (has been|should be|is) (resolved|mitigated)|services? (have|has) (been )?(recovered|restored)"
    r"|.{0,80} (is|are) (now )?(operating|performing) normally|.{0,80} (is|are) (now )?experiencing (degraded|an? )"
    r"|(we|our engineering team) (are|is) (still|continuing to|currently) (investigat|work|monitor)"
    r"|(our engineering team|we) (continues? to|will continue to) (investigate|work|monitor)"
    r"|we (will|'ll) (continue to|provide|post|conduct|publish|keep)|we (apologi[sz]e|thank you|sincerely)"
    r"|(the )?mitigation (work )?is (currently |still )?(underway|in progress)|we do not have an eta"
    r"|we (have )?(deployed|rolled out|applied) a (potential )?(fix|mitigation)( and are monitoring.*)?[.]?$"
    r"|(if you have questions|please open a case|for (regular )?status updates)"
    r"|(description|summary|diagnosis|workaround):\s*(none|$))",
    re.IGNORECASE,
)
# Generic status updates that describe no fix: a resolution closer to one of these than to every playbook gets None.
# Whole-text similarity is dominated by "this is an incident update", so a reject class beats a threshold alone.
NO_FIX_TEXTS = [
    "We are investigating the issue and will provide an update when we have more information.",
    "We have identified the cause and are working on a fix.",
    "Mitigation work is underway by our engineering team.",
    "The issue has been resolved and all services are operating normally.",
    "We would like to provide some information about this incident below.",
    "Our monitoring detected the issue and engineers were engaged to investigate.",
    "Customers may experience errors, failures or degraded performance.",
    "We have applied a mitigation and are monitoring recovery.",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class PlaybookMatch(BaseModel):
    playbook_id: str
    score: float  # cosine similarity of the best playbook text


def informative_text(resolution: str) -> str:
    """The resolution without stock sentences, or "" if too little is left to say how it was fixed."""
    kept = [
        s
        for s in (p.strip() for p in _SENTENCE.split(squash(resolution or "")))
        if s and not is_stock(s) and not _STOCK_EXTRA.match(s)
    ]
    text = " ".join(kept)
    return text if len(text.split()) >= MIN_WORDS else ""


def playbook_texts(p: Playbook) -> list[str]:
    """Texts that stand for a playbook: the whole description, and the keywords in one list (the max is taken)."""
    texts = [f"{p.title}. {p.description}".strip()]
    if p.keywords:
        texts.append(f"{p.title}: {', '.join(p.keywords)}")
    return texts


class ResolutionMapper:
    """Resolution text -> best-fitting playbook, or None when nothing fits well enough (no default fallback)."""

    def __init__(
        self,
        library: PlaybookLibrary,
        min_score: float = DEFAULT_MIN_SCORE,
        embedder: Embedder | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if embedder is None:
            from bot.embeddings import get_embedder

            embedder = get_embedder()
        self.embedder, self.min_score, self.cache_size = embedder, min_score, cache_size
        owners: list[str] = []
        texts: list[str] = []
        for p in library.by_id.values():
            for t in playbook_texts(p):
                owners.append(p.id)
                texts.append(t)
        owners += [""] * len(NO_FIX_TEXTS)  # "" marks the reject class
        texts += NO_FIX_TEXTS
        self._owners = np.array(owners)
        self._vectors = self.embedder.embed(
            texts
        )  # once: the library is small and does not change at run time
        self._cache: OrderedDict[str, PlaybookMatch | None] = OrderedDict()

    def map(self, resolution: str) -> PlaybookMatch | None:
        return self.map_many([resolution])[0]

    def map_many(self, resolutions: list[str]) -> list[PlaybookMatch | None]:
        """One batched embed call for the texts not cached; the bot maps the same neighbours again and again."""
        keys = [hashlib.sha256((r or "").encode("utf-8")).hexdigest() for r in resolutions]
        found: dict[str, PlaybookMatch | None] = {k: self._cache[k] for k in keys if k in self._cache}
        todo = {k: informative_text(r) for k, r in zip(keys, resolutions, strict=True) if k not in found}
        pending = [(k, t) for k, t in todo.items() if t]
        found.update({k: None for k, t in todo.items() if not t})
        if pending:
            sims = self.embedder.embed([t for _, t in pending]) @ self._vectors.T
            found.update({k: self._best(row) for (k, _), row in zip(pending, sims, strict=True)})
        for k in dict.fromkeys(keys):
            self._cache[k] = found[k]
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return [found[k] for k in keys]

    def _best(self, sims: np.ndarray) -> PlaybookMatch | None:
        i = int(np.argmax(sims))
        score = float(sims[i])
        if not self._owners[i] or score < self.min_score:
            return None
        return PlaybookMatch(playbook_id=str(self._owners[i]), score=round(score, 4))
