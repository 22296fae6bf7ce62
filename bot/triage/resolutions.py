"""Map a past incident's resolution text (how it was fixed) to the mitigation playbook that fits it.

Why: retrieved neighbours tell *how* similar incidents were fixed; naming the playbook that matches that fix lets
the bot point at a concrete, operator-maintained procedure instead of free text.

Method (sentence-level, embedding + keywords, with a competing "no fix" class):
1. `fix_sentences`: split the resolution into sentences; drop stock status lines, timeline stamps, the template's
   symptom/workaround lines and everything from a review's prevention / follow-up heading on.
2. Each sentence is embedded (MiniLM) and compared with every playbook's texts from its front matter: title +
   description, the keyword list, and each keyword alone; the playbook's similarity is the max over its texts.
3. A keyword whose word stems all occur in the sentence (or all but the last of 3+) adds `LEXICAL_BONUS`.
4. The sentence counts for a playbook only if that score beats the sentence's best similarity to the generic
   "no fix described" texts (`NO_FIX_TEXTS`) by `REJECT_MARGIN` and reaches `DEFAULT_MIN_SCORE`; the resolution
   maps to the best such (sentence, playbook) pair, else None (no default fallback).
Operators steer it by editing the playbooks' descriptions and keywords, without code changes.
The three numbers were chosen on dev draws outside both hand-checked samples; the samples' figures are in
evals/playbook-sample.md.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel

from bot.text import is_stock, squash
from bot.triage.playbooks import Playbook, PlaybookLibrary

# Chosen on dev draws outside both hand-checked samples (evals/playbook-dev.jsonl, evals/playbook-sample.md).
DEFAULT_MIN_SCORE = 0.55
MIN_WORDS = 5  # fewer informative words than this say nothing about how the incident was fixed
MIN_SENTENCE_WORDS = 4
MAX_SENTENCES = 40  # a long review's first 40 sentences; the fix is told early
LEXICAL_BONUS = 0.2
REJECT_MARGIN = 0.05
CACHE_SIZE = 4096

# Status-page boilerplate beyond the openers that bot.text knows: sentences that say nothing about the fix.
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
    "We have deployed a fix and are monitoring the results.",
    "We are continuing to mitigate the issue.",
    "We are processing the backlog and the service is recovering.",
    "The issue has been resolved for all affected users and error rates are back to normal.",
    "We will conduct an internal investigation and publish an incident report.",
    "Please contact support if you are still affected.",
    "Affected services and features. Incident start, incident end, duration.",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+|\s+\|\s+")
# Where a post-incident review stops telling what was done and turns to prevention or follow-up.
_AFTERMATH = re.compile(
    r"(how are we making incidents|how can customers make|how can we make our incident|next steps:|what happens next\?"
    r"|how can we make|provide feedback:)",
    re.IGNORECASE,
)
# Lines of a status-page template that tell the symptom or the customer's own workaround, not what was done.
_NOT_OURS = re.compile(
    r"^(workaround|diagnosis|summary|affected (services|products|locations)|incident (start|end)|duration"
    r"|(preliminary|mini) incident (statement|report))\b|^(if |customers (can|could|may|should|will)"
    r"|users (can|could|may|should|will))",
    re.IGNORECASE,
)
# "16:09 CST on 5 Sep 2024 – We ...": a timeline entry's stamp
_TIMESTAMP = re.compile(r"^[^.]{0,60}?\d{1,2}:\d{2}[^.]{0,60}?\s[-–—]\s+")


def keyword_hit(keyword: tuple[str, ...], have: set[str], partial: bool = True) -> float:
    """How much of a keyword (its stems, in order) a sentence has: all of it, or all but the last of 3+ stems (the
    object may be worded differently: "rolled back the release" for "rolled back the deployment"); a one-word
    keyword says less than a phrase, so it counts half."""
    if all(k in have for k in keyword):
        return min(1.0, len(keyword) / 2)
    if partial and len(keyword) >= 3 and all(k in have for k in keyword[:-1]):
        return (len(keyword) - 1) / len(keyword)
    return 0.0


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class PlaybookMatch(BaseModel):
    playbook_id: str
    score: float  # best sentence: cosine similarity to the playbook's texts, plus the keyword bonus if any


def informative_text(resolution: str) -> str:
    """The resolution without stock sentences, or "" if too little is left to say how it was fixed."""
    kept = [
        s
        for s in (p.strip() for p in _SENTENCE.split(squash(resolution or "")))
        if s and not is_stock(s) and not _STOCK_EXTRA.match(s)
    ]
    text = " ".join(kept)
    return text if len(text.split()) >= MIN_WORDS else ""


def fix_parts(resolution: str) -> list[tuple[str, str]]:
    """(sentence, its timeline stamp or "") for the sentences that may tell how it was fixed: stock status lines,
    the review's prevention / follow-up sections dropped, sentences shorter than MIN_SENTENCE_WORDS skipped."""
    text = squash(resolution or "")
    if m := _AFTERMATH.search(text):
        text = text[: m.start()]
    out = []
    for part in _SENTENCE.split(text):
        part = part.strip()
        stamp = m.group(0).strip(" -–—") if (m := _TIMESTAMP.match(part)) else ""
        sent = _TIMESTAMP.sub("", part).strip(" -–—*#:")
        sent = re.sub(r"^description:\s*", "", sent, flags=re.IGNORECASE)
        if (
            len(sent.split()) >= MIN_SENTENCE_WORDS
            and not is_stock(sent)
            and not _STOCK_EXTRA.match(sent)
            and not _NOT_OURS.match(sent)
        ):
            out.append((sent, stamp))
    return out[:MAX_SENTENCES]


def fix_sentences(resolution: str) -> list[str]:
    """The sentences that may tell how it was fixed (`fix_parts` without the stamps)."""
    return [sent for sent, _ in fix_parts(resolution)]


# ---- lexical keyword hits ---------------------------------------------------------------------------------------
_JOINED = {"rollback": "roll back", "rollbacks": "roll back", "failover": "fail over", "failovers": "fail over",
           "scaleout": "scale out", "hotfixes": "hotfix"}  # fmt: skip
_STOP_WORDS = (
    "a an the to of and or on in for by with was were is are be been being our we their its it from that this as at "
    "into onto all any some "
    # words every status update uses: they say nothing about the kind of fix
    "service services issue issues impact customer customers user users system systems affected problem"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9]+")


_SUFFIXES = ("ations", "ation", "ments", "ment", "ions", "ion", "ing", "ies", "ied", "ed", "es", "s", "e")


def stem(word: str) -> str:
    """A crude stem, enough to match "rolled back" to "rolling back" or "configuration" to "configured"."""
    w = word.lower()
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
        w = w[:-1]  # stopped -> stop
    return w[:6]


def stems(text: str) -> list[str]:
    words = []
    for w in _WORD.findall(text.lower().replace("-", " ")):
        words += _JOINED.get(w, w).split()
    return [stem(w) for w in words if w not in _STOP]


@dataclass(frozen=True)
class Target:
    """What a sentence can map to (a playbook, a mitigation action): its id, texts that stand for it, keywords."""

    id: str
    texts: list[str]
    keywords: list[str]


class SentenceMatch(BaseModel):
    id: str
    score: float
    sentence: str  # the sentence that scored best
    stamp: str = ""  # its timeline stamp, if the text had one


def playbook_texts(p: Playbook) -> list[str]:
    """Texts that stand for a playbook: the whole description, the keywords in one list, and each keyword alone."""
    texts = [f"{p.title}. {p.description}".strip()]
    if p.keywords:
        texts.append(f"{p.title}: {', '.join(p.keywords)}")
        texts += list(p.keywords)
    return texts


class SentenceMapper:
    """Resolution text -> the best-fitting target and the sentence that says so, or None when nothing fits well
    enough (no default fallback).

    Per sentence: embedding similarity to each target's texts (max over them) plus `lexical_bonus` when a keyword
    of the target occurs in it (all its word stems); the sentence counts only if that beats its similarity to the
    "no fix" texts by `margin` and reaches `min_score` (and, with `require_keyword`, has one of the target's
    keywords). The text's target is the best over its sentences.
    """

    def __init__(
        self,
        targets: list[Target],
        min_score: float = DEFAULT_MIN_SCORE,
        embedder: Embedder | None = None,
        cache_size: int = CACHE_SIZE,
        lexical_bonus: float = LEXICAL_BONUS,
        margin: float = REJECT_MARGIN,
        reject_texts: list[str] | None = None,
        require_keyword: bool = False,
        keep: Callable[[str], bool] | None = None,
        latest: bool = False,
    ) -> None:
        if embedder is None:
            from bot.store.embeddings import get_embedder

            embedder = get_embedder()
        self.embedder, self.min_score, self.cache_size = embedder, min_score, cache_size
        self.lexical_bonus, self.margin, self.require_keyword = lexical_bonus, margin, require_keyword
        self.keep = keep or (lambda _s: True)  # which fix sentences may count at all
        # the text's last qualifying sentence rather than its best-scoring one: updates are in time order, and what
        # was done last is what ended the incident ("a fix is being deployed" ... "we are rolling back")
        self.latest = latest
        self.ids = [t.id for t in targets]
        owners = [j for j, t in enumerate(targets) for _ in t.texts]
        texts = [x for t in targets for x in t.texts]
        reject = NO_FIX_TEXTS if reject_texts is None else reject_texts
        self._owners = np.array(owners)
        # once: the targets are few and do not change at run time
        vectors = self.embedder.embed(texts + reject) if texts or reject else np.zeros((0, 1))
        self._vectors, self._reject = vectors[: len(texts)], vectors[len(texts) :]
        self._keywords = [[tuple(dict.fromkeys(k)) for kw in t.keywords if (k := stems(kw))] for t in targets]
        self._cache: OrderedDict[str, SentenceMatch | None] = OrderedDict()

    def match(self, resolution: str) -> SentenceMatch | None:
        return self.match_many([resolution])[0]

    def match_many(self, resolutions: list[str]) -> list[SentenceMatch | None]:
        """One batched embed call for the texts not cached; the bot maps the same neighbours again and again."""
        keys = [hashlib.sha256((r or "").encode("utf-8")).hexdigest() for r in resolutions]
        found: dict[str, SentenceMatch | None] = {k: self._cache[k] for k in keys if k in self._cache}
        todo = {
            k: [p for p in fix_parts(r) if self.keep(p[0])]
            for k, r in zip(keys, resolutions, strict=True)
            if k not in found
        }
        found.update({k: None for k, parts in todo.items() if not parts or not self.ids})
        flat = [(k, part) for k, parts in todo.items() if k not in found for part in parts]
        if flat:
            scores, ok = self.sentence_scores([sent for _, (sent, _) in flat])
            for k in dict.fromkeys(k for k, _ in flat):
                rows = [i for i, (kk, _) in enumerate(flat) if kk == k]
                found[k] = self._best(scores[rows], ok[rows], [flat[i][1] for i in rows])
        for k in dict.fromkeys(keys):
            self._cache[k] = found[k]
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return [found[k] for k in keys]

    def sentence_scores(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sentences x targets) scores, and whether each beats the sentence's "no fix" similarity by the margin
        (and has one of the target's keywords, with `require_keyword`)."""
        vecs = self.embedder.embed(sentences)
        sims = vecs @ self._vectors.T
        emb = np.full((len(sentences), len(self.ids)), -1.0, dtype=np.float32)
        for j in range(len(self.ids)):
            if (self._owners == j).any():
                emb[:, j] = sims[:, self._owners == j].max(axis=1)
        lex = np.zeros_like(emb)
        for i, sent in enumerate(sentences):
            have = set(stems(sent))
            for j, kws in enumerate(self._keywords):
                # a required keyword must be there whole: "rolled out" is not "rolled out a fix"
                lex[i, j] = max((keyword_hit(k, have, not self.require_keyword) for k in kws), default=0.0)
        scores = emb + self.lexical_bonus * lex
        reject = (vecs @ self._reject.T).max(axis=1) if len(self._reject) else np.full(len(sentences), -1.0)
        ok = scores >= reject[:, None] + self.margin
        return scores, (ok & (lex > 0)) if self.require_keyword else ok

    def _best(self, scores: np.ndarray, ok: np.ndarray, parts: list[tuple[str, str]]) -> SentenceMatch | None:
        masked = np.where(ok & (scores >= self.min_score), scores, -np.inf)
        i, j = np.unravel_index(int(np.argmax(masked)), masked.shape)
        if self.latest and np.isfinite(masked).any():
            i = int(np.flatnonzero(np.isfinite(masked).any(axis=1))[-1])
            j = int(np.argmax(masked[i]))
        if not np.isfinite(masked[i, j]):
            return None
        sent, stamp = parts[i]
        return SentenceMatch(id=self.ids[j], score=round(float(masked[i, j]), 4), sentence=sent, stamp=stamp)


class ResolutionMapper(SentenceMapper):
    """Resolution text -> the playbook whose description and keywords fit how it was fixed, or None."""

    def __init__(
        self,
        library: PlaybookLibrary,
        min_score: float = DEFAULT_MIN_SCORE,
        embedder: Embedder | None = None,
        cache_size: int = CACHE_SIZE,
        lexical_bonus: float = LEXICAL_BONUS,
        margin: float = REJECT_MARGIN,
    ) -> None:
        targets = [Target(p.id, playbook_texts(p), list(p.keywords)) for p in library.by_id.values()]
        super().__init__(targets, min_score, embedder, cache_size, lexical_bonus, margin)

    def map(self, resolution: str) -> PlaybookMatch | None:
        return self.map_many([resolution])[0]

    def map_many(self, resolutions: list[str]) -> list[PlaybookMatch | None]:
        return [
            PlaybookMatch(playbook_id=m.id, score=m.score) if m else None
            for m in self.match_many(resolutions)
        ]
