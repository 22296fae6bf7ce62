"""What fixed a past incident: its mitigation action (the taxonomy's `mitigation:` vocabulary) and the sentence that
says so, shown for every similar incident (Slack, terminal, `history search`) and used as its action.

Where the action comes from, first that answers: the incident's labels (`labels.mitigation`), an engineer's verdict
("what fixed it"), else its resolution text. From text, `bot.triage.resolutions.SentenceMapper` (the playbook
mapper, generalised) scores each fix sentence against the actions' descriptions and keywords, with a competing
"no fix" class; unlike playbooks a sentence names an action only if it holds one of the action's keywords (generic
action phrases: "rolled back the change", "failed over", "scaled out"), and a sentence that only says what may,
will or should happen never counts. No sentence -> None: "no fix recorded", never a status line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from bot.models import FixSummary, HistoricalIncident, SimilarIncident
from bot.taxonomy import MITIGATION, Taxonomy
from bot.triage.resolutions import Embedder, SentenceMapper, SentenceMatch, Target

NO_FIX = "no fix recorded"
# Chosen on a dev draw outside the hand-checked sample (evals/mitigation-sample.md). The keyword is required, so the
# score only has to say the sentence reads more like an action than like a status line.
MIN_SCORE = 0.45
MARGIN = 0.0
# Status lines that describe no action, competing per sentence. The playbook mapper's list also holds "we have
# deployed a fix": a fix rolled forward is an action here, so it is left out.
NO_FIX_TEXTS = [
    "We are investigating the issue and will provide an update when we have more information.",
    "We have identified the cause and are working on a fix.",
    "We are working on implementing a fix.",
    "Mitigation work is underway by our engineering team.",
    "The issue has been resolved and all services are operating normally.",
    "Error rates are returning to normal and the service is recovering.",
    "Our monitoring detected the issue and engineers were engaged to investigate.",
    "Customers may experience errors, failures or degraded performance.",
    "We are continuing to monitor the situation.",
    "We are processing the backlog and the service is recovering.",
    "We will conduct an internal investigation and publish an incident report.",
    "Please contact support if you are still affected.",
]
# A sentence about what may, will or should happen (a customer's workaround, a plan, an ETA), about an action that
# failed or was not taken, or about the cause or the prevention says nothing done.
_NOT_DONE = re.compile(
    r"\b(may|might|could|would|should|will|can|cannot|expect(s|ed)? to|plan(s|ned)? to|eta|if|failed to|unable to"
    r"|did not|didn't|not able to|inadvertently|unsuccessful(ly)?|(rollback|roll back|failover|restart) failed"
    # a cause, an impact or a prevention, not the fix; work still to do
    r"|root cause|(was|were|is) due to|caused by|when attempting|to prevent|working (on|to)|unlikely"
    r"|experienc(ed|ing))\b|'ll\b",
    re.IGNORECASE,
)
_TZ = r"(?:\s?(?:UTC|GMT|[PMCE][SD]?T|CET|CEST|US/Pacific|pacific(?: time)?))?"
_TIME = re.compile(
    r"\b(?:\d{1,2}:\d{2}(?::\d{2})?\s?(?:[ap]\.?m\.?|[ap]\b)?|\d{1,2}\s?[ap]\.?m\.?)" + _TZ, re.IGNORECASE
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}} {_MONTH},? \d{{4}}|{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?)",
    re.IGNORECASE,
)


class MitigationError(ValueError):
    """An action that is not in the taxonomy's mitigation vocabulary (the message lists the vocabulary)."""


def check_action(taxonomy: Taxonomy, raw: str) -> str:
    """The vocabulary id for `raw` (aliases and case allowed), or MitigationError saying what is allowed."""
    if taxonomy.mitigation is None:
        raise MitigationError(f"taxonomy {taxonomy.name!r} has no mitigation vocabulary")
    action = taxonomy.normalise(MITIGATION, raw or "")
    if action is None:
        allowed = ", ".join(taxonomy.mitigation.ids)
        raise MitigationError(f"unknown mitigation action {raw!r}: use one of {allowed}")
    return action


def when(sentence: str, stamp: str = "") -> str:
    """When the sentence says it happened: its timeline stamp, else the date and time it names ("" if none)."""
    if stamp:
        return stamp
    t, d = _TIME.search(sentence), _DATE.search(sentence)
    return " ".join(m.group(0).strip() for m in sorted((x for x in (d, t) if x), key=lambda m: m.start()))


def done(sentence: str) -> bool:
    return not _NOT_DONE.search(sentence)


class MitigationExtractor:
    """A taxonomy's mitigation vocabulary -> the action a past incident's labels, verdict or text name."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder | None = None) -> None:
        self.taxonomy = taxonomy
        cats = taxonomy.mitigation.categories if taxonomy.mitigation else {}
        targets = [
            Target(cid, [f"{c.title or cid}. {c.description}".strip(), *c.keywords], list(c.keywords))
            for cid, c in cats.items()
            if c.keywords  # an action without keywords (`other`) comes from labels and verdicts only
        ]
        self.mapper = SentenceMapper(
            targets,
            MIN_SCORE,
            embedder,
            margin=MARGIN,
            reject_texts=NO_FIX_TEXTS,
            require_keyword=True,
            keep=done,
            latest=True,
        )

    def summaries(self, resolutions: list[str]) -> list[FixSummary | None]:
        return [_summary(m) for m in self.mapper.match_many(resolutions)]

    def summary(self, resolution: str) -> FixSummary | None:
        return self.summaries([resolution])[0]

    def known(self, action: str | None) -> str | None:
        """The action if the current vocabulary has it (a vocabulary edit can drop one: then the text decides)."""
        return action if action and self.taxonomy.is_valid(MITIGATION, action) else None

    def of_incidents(
        self,
        labels: list[dict[str, list[str]]],
        resolutions: list[str],
        verdicts: list[str | None] | None = None,
    ) -> list[FixSummary | None]:
        """Per incident: its labelled action, else its verdict's, else the one its resolution text names."""
        verdicts = verdicts or [None] * len(labels)
        text = self.summaries(resolutions)
        out: list[FixSummary | None] = []
        for labs, verdict, from_text in zip(labels, verdicts, text, strict=True):
            labelled = self.known(next(iter(labs.get(MITIGATION, [])), None))
            action, source = (labelled, "label") if labelled else (self.known(verdict), "verdict")
            if action is None:
                out.append(from_text)
                continue
            said = from_text.sentence if _same(from_text, action) else ""
            out.append(FixSummary(action=action, sentence=said, source=source))
        return out

    def of_history(
        self, incidents: list[HistoricalIncident] | list[SimilarIncident]
    ) -> list[FixSummary | None]:
        """Per history record (or similar incident): an engineer's verdict ("what fixed it" in the Correct modal)
        is stored as the labels of a record whose `source` is feedback:..."""
        from_verdict = [i.source.startswith("feedback:") for i in incidents]
        return self.of_incidents(
            [{} if v else i.labels for i, v in zip(incidents, from_verdict, strict=True)],
            [i.resolution for i in incidents],
            [
                next(iter(i.labels.get(MITIGATION, [])), None) if v else None
                for i, v in zip(incidents, from_verdict, strict=True)
            ],
        )

    def annotate(self, similar: list[SimilarIncident]) -> list[SimilarIncident]:
        """The similar incidents with what fixed each (`fix`), in one batched pass."""
        fixes = self.of_history(similar)
        return [s.model_copy(update={"fix": f}) for s, f in zip(similar, fixes, strict=True)]


def _summary(m: SentenceMatch | None) -> FixSummary | None:
    return FixSummary(action=m.id, sentence=m.sentence, when=when(m.sentence, m.stamp)) if m else None


def _same(fix: FixSummary | None, action: str) -> bool:
    return fix is not None and fix.action == action


@lru_cache(maxsize=4)
def _default_extractor(taxonomy_path: str) -> MitigationExtractor:
    return MitigationExtractor(Taxonomy.load(taxonomy_path))


def fix_summary(resolution: str, extractor: MitigationExtractor | None = None) -> FixSummary | None:
    """The sentence of a resolution that says what was done, and the action; None: no fix recorded."""
    if extractor is None:
        from bot.config import Settings

        extractor = _default_extractor(str(Settings().taxonomy_path))
    return extractor.summary(resolution)


def past_fixes(incidents: list[HistoricalIncident]) -> list[FixSummary | None]:
    """What fixed each history record, by the configured taxonomy (`history search`, `/triage similar`)."""
    from bot.config import Settings

    return _default_extractor(str(Settings().taxonomy_path)).of_history(incidents)


def fix_text(fix: FixSummary | None, taxonomy: Taxonomy | None = None, limit: int = 240) -> str:
    """One line for a similar incident: "Rollback: <sentence> (when)", or NO_FIX. The one wording every view uses."""
    if fix is None:
        return NO_FIX
    cats = taxonomy.mitigation.categories if taxonomy and taxonomy.mitigation else {}
    name = cats[fix.action].title if fix.action in cats and cats[fix.action].title else fix.action
    said = " ".join(fix.sentence.split())
    at = f" ({fix.when})" if fix.when and fix.when not in said else ""
    by = {"label": " (labelled)", "verdict": " (engineer's verdict)"}.get(fix.source, "")
    line = f"{name}{by}: {said}{at}" if said else f"{name}{by}"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def without_fix(similar: list[SimilarIncident], show: Callable[[SimilarIncident], str]) -> str:
    """The similar incidents that record no fix, in one line under those that do ("" when every one does): a row of
    "no fix recorded" each buried the fixes an engineer reads the list for."""
    none = [s for s in similar if s.fix is None]
    if not none:
        return ""
    what = "records" if len(none) == 1 else "record"
    return f"{len(none)} of {len(similar)} {what} no fix: " + ", ".join(show(s) for s in none)
