"""The first triage step: the check that tells the top two hypotheses apart when they are close, else the chosen
playbook's `first_check`; either way filled with the ticket's own service, model, region, error codes and start.

When the two likeliest root causes (or mitigation actions, where the draft has hypotheses) are within CLOSE_MARGIN
of each other and lead to different playbooks, the step says what each would look like on this ticket and what to
look at then: "Deployment or configuration? If only gpt-4o in East US fails, from a rollout there: check the
deployment pipeline...; if the errors step up right after a configuration change: list the changes in the 2 h before
14:05 UTC". What each looks like is the playbook's `signature` (operator-editable front matter; its first check's
first clause where there is none). A rule writes it; the LLM's phrasing replaces it only when it names exactly the
same ticket entities (`check_step`) and verdicts have shown engineers keep the LLM's step (`StepWitness`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Literal, cast

from pydantic import BaseModel, Field

from bot.clock import aware
from bot.models import Context, LabelDecision, Ticket, last_change_before
from bot.taxonomy import MITIGATION, Taxonomy
from bot.telemetry import describe
from bot.text import usable_text
from bot.triage.evidence import describe as describe_evidence
from bot.triage.playbooks import Playbook, PlaybookLibrary

if TYPE_CHECKING:
    from bot.triage.trainer import Trainer

CLOSE_MARGIN = 0.15  # top two within 15 points of probability: the evidence does not tell them apart
ROOT_CAUSE = "root_cause"
CLAUSE_CHARS = 130

_MODEL = re.compile(
    r"\b(?:gpt-?\d(?:\.\d)?[a-z]?(?:-(?:mini|nano|turbo|pro|preview|realtime|audio|\d{4,}))*|o[134](?:-(?:mini|pro|preview))?"
    r"|claude(?:[- ](?:instant|opus|sonnet|haiku|\d(?:\.\d)?))+|gemini[- ]\d(?:\.\d)?(?:[- ](?:pro|flash|ultra|nano))?"
    r"|llama[- ]?\d(?:\.\d)?(?:[- ]\d+b)?|mi[sx]tral(?:[- ](?:large|small|medium|7b|8x7b|8x22b))?"
    r"|dall-?e(?:[- ]\d)?|whisper(?:-\d)?|text-embedding-[\w-]+|sora|stable diffusion(?: \w+)?|sdxl)\b",
    re.IGNORECASE,
)
_DIRS = r"(?:north|south|east|west|central)(?:east|west)?"
_REGION = re.compile(
    rf"\b(?:(?:us|eu|ap|sa|ca|me|af|il|asia|europe|australia|northamerica|southamerica)-{_DIRS}\d?(?:-\d)?"
    rf"|(?:East|West|North|South|Central|North Central|South Central|West Central) (?:US|Europe|Asia|Japan|India|"
    r"Australia|Canada|UK)(?: ?\d)?"
    r"|(?:Sweden|France|Germany|Switzerland|Norway|UAE|Korea|Japan|Brazil|Canada|UK|Poland|Italy|Spain|Qatar|Mexico)"
    r" (?:Central|South|North|East|West)"
    rf"|(?:east|west|north|south|central)(?:us|europe|asia)\d?)\b",
    re.IGNORECASE,
)
_CODE = re.compile(
    r"\b(?:HTTP|status|error|code)[ :]*([45]\d\d)\b|\b([45](?:\d\d|xx))s?(?= (?:errors?|responses?|status))"
    r"|\b([45]\d\d)(?= (?:Too Many|Service Unavailable|Internal Server|Bad Gateway|Gateway Timeout|Bad Request))"
    r"|(?<!\[)\b([A-Z]{3,}(?:_[A-Z]+)+|[A-Z][a-z]+(?:[A-Z][a-z]+)+(?:Error|Exception|Exceeded|Unavailable))\b",
)
_CLOCK = r"\d{1,2}:\d{2}(?:\s?(?:UTC|GMT|[PMCE][SD]T))?"
_START = re.compile(
    rf"\b(?:since|from|start(?:ed|ing)?(?: at)?|beginning(?: at)?|as of|at)\s+({_CLOCK})", re.I
)
_STATUS = re.compile(r"\b([45]\d\d)s?\b")
_ANY_CLOCK = re.compile(rf"\b{_CLOCK}", re.IGNORECASE)


class Entities(BaseModel):
    """What the ticket itself names: the step is about these, and the LLM's phrasing may name no others."""

    service: str | None = None
    models: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    codes: list[str] = Field(default_factory=list)
    start: str | None = None

    def scope(self) -> str:
        """ "gpt-4o in East US (503, since 14:05 UTC)", or "" when the ticket names none of it."""
        what = self.models[0] if self.models else ""  # the first named is the affected one, in tickets
        where = " and ".join(self.regions[:2])
        head = (
            f"{what} in {where}"
            if what and where
            else what or (f"{self.service} in {where}" if where else "")
        )
        extra = ", ".join(
            x for x in (", ".join(self.codes[:2]), f"since {self.start}" if self.start else "") if x
        )
        return f"{head} ({extra})" if head and extra else head or extra


def _unique(xs: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for x in xs:
        seen.setdefault(_norm(x), x.strip())
    return list(seen.values())


def _norm(x: str) -> str:
    return re.sub(r"[\s_-]+", "", x.lower())


def extract(text: str, service: str | None = None, created_at: datetime | None = None) -> Entities:
    """The ticket's model names, regions, error codes and start time (its own words), by small general patterns;
    the start is the time the text gives ("since 14:05 UTC"), else when the ticket was opened."""
    codes = [next(g for g in m.groups() if g) for m in _CODE.finditer(text)]
    start = m.group(1) if (m := _START.search(text)) else None
    if start is None and created_at is not None:
        start = created_at.strftime("%H:%M UTC")
    return Entities(
        service=service,
        models=_unique([m.group(0) for m in _MODEL.finditer(text)]),
        regions=_unique([m.group(0) for m in _REGION.finditer(text)]),
        codes=_unique(codes),
        start=start,
    )


def entities_in(text: str) -> set[str]:
    """The entities a piece of text names, normalised (for comparing a phrasing with the rule's step)."""
    e = extract(text)
    clocks = {m.group(0)[:5].rstrip() for m in _ANY_CLOCK.finditer(text)}
    statuses = set(_STATUS.findall(text))  # any 4xx/5xx here: a step's text has no other such numbers
    return {_norm(x) for x in (*e.models, *e.regions, *e.codes, *statuses)} | {
        _norm(c.split()[0]) for c in clocks
    }


class Hypothesis(BaseModel):
    kind: Literal["root_cause", "action"]
    id: str
    title: str
    p: float
    playbook: str | None = None


class Step(BaseModel):
    text: str
    kind: Literal["separating", "playbook"]
    between: list[str] = Field(default_factory=list)  # the hypotheses it separates


def fill(check: str, e: Entities) -> str:
    """A playbook check with the ticket's entities where the check names them."""
    subs = [
        (r"\bthe first symptom\b", f"the first symptom ({e.start})" if e.start else None),
        (r"\bper (model(?: deployment| version)?)\b", f"per \\1 ({e.models[0]} first)" if e.models else None),
        (r"\bper region\b", f"per region ({e.regions[0]} first)" if e.regions else None),
        (
            r"\b(error breakdown|error rate|error graphs?)\b",
            f"\\1 ({', '.join(e.codes[:2])})" if e.codes else None,
        ),
    ]
    for pattern, repl in subs:
        if repl:
            check = re.sub(pattern, repl, check, count=1, flags=re.IGNORECASE)
    return check


def clause(check: str) -> str:
    """The first sentence of a check (its head before a colon, if that is a sentence of its own)."""
    first = re.split(r"(?<=[.!?])\s", check.strip(), maxsplit=1)[0].rstrip(".")
    head = first.split(": ", 1)[0]
    out = head if len(head) >= 40 else first
    return out if len(out) <= CLAUSE_CHARS else out[: CLAUSE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def signature(pb: Playbook, e: Entities) -> str:
    """What the data shows when this playbook's case is the one, on this ticket (its `signature` filled in)."""
    vals = {
        "model": e.models[0] if e.models else "one model",
        "region": e.regions[0] if e.regions else "one region",
        "service": e.service or "the service",
        "codes": ", ".join(e.codes[:2]) or "the errors",
        "start": e.start or "the first symptom",
    }
    return re.sub(r"\{(\w+)\}", lambda m: vals.get(m.group(1), m.group(0)), pb.signature)


def root_cause_hypotheses(
    labels: dict[str, LabelDecision], taxonomy: Taxonomy, playbooks: PlaybookLibrary
) -> list[Hypothesis]:
    """The root cause's candidates with their probabilities (the decision's scores, else the neighbours' vote),
    each with the playbook that best fits it beside the decided symptom."""
    d = labels.get(ROOT_CAUSE)
    fld = taxonomy.fields.get(ROOT_CAUSE)
    if d is None or fld is None:
        return []
    probs = d.scores or d.retrieval_votes
    decided = {f: x.label for f, x in labels.items()}
    out = []
    for cid in sorted(probs, key=lambda c: -probs[c])[:3]:
        fits = {**decided, ROOT_CAUSE: cid}
        pbs = [p for p in playbooks.by_id.values() if cid in p.applies_to.get(ROOT_CAUSE, [])]
        best = max(pbs, key=lambda p: p.match(fits, {ROOT_CAUSE: 2.0, "symptom": 1.0}), default=None)
        title = fld.categories[cid].title if cid in fld.categories else cid
        out.append(Hypothesis(kind="root_cause", id=cid, title=title or cid, p=probs[cid],
                              playbook=best.id if best else None))  # fmt: skip
    return out


def action_hypotheses(hypotheses: list[object], taxonomy: Taxonomy) -> list[Hypothesis]:
    """Mitigation hypotheses on the draft (any objects with `action` and `probability`), with their playbooks."""
    cats = taxonomy.mitigation.categories if taxonomy.mitigation else {}
    out = []
    for h in hypotheses:
        action, p = getattr(h, "action", None), getattr(h, "probability", None)
        if isinstance(action, str) and isinstance(p, float | int):
            pbs = list(getattr(h, "playbooks", None) or taxonomy.playbooks_for(action))
            title = cats[action].title if action in cats and cats[action].title else action
            out.append(
                Hypothesis(kind="action", id=action, title=title, p=float(p), playbook=next(iter(pbs), None))
            )
    return sorted(out, key=lambda h: -h.p)


def close_pair(hyps: list[Hypothesis], margin: float = CLOSE_MARGIN) -> tuple[Hypothesis, Hypothesis] | None:
    """The top two if they are within `margin` and lead to different playbooks (same playbook: same first look)."""
    if len(hyps) < 2:
        return None
    a, b = hyps[0], hyps[1]
    if a.p - b.p > margin or not a.playbook or not b.playbook or a.playbook == b.playbook:
        return None
    return a, b


def first_step(
    e: Entities,
    chosen: Playbook,
    playbooks: PlaybookLibrary,
    hypotheses: list[Hypothesis],
    margin: float = CLOSE_MARGIN,
) -> Step:
    """The separating check for two close hypotheses, else the chosen playbook's first check; with the entities."""
    pair = close_pair(hypotheses, margin)
    pa = playbooks.get(pair[0].playbook or "") if pair else None
    pb = playbooks.get(pair[1].playbook or "") if pair else None
    if pair is None or pa is None or pb is None:
        return Step(text=fill(chosen.first_check or chosen.steps[0].action, e), kind="playbook")
    a, b = pair
    parts = []
    for h, p in ((a, pa), (b, pb)):
        check = fill(clause(p.first_check or p.steps[0].action), e)
        lead = f"if {signature(p, e)}" if p.signature else f"if {h.title.lower()}"
        parts.append(f"{lead} — {check[0].lower()}{check[1:]}")
    scope = e.scope()
    where = f" On {scope}:" if scope else ""
    text = f"{a.title} ({a.p:.0%}) or {b.title} ({b.p:.0%})?{where} {parts[0][0].upper()}{parts[0][1:]}; {parts[1]}"
    text += "" if text.endswith("…") else "."
    return Step(text=" ".join(text.split()), kind="separating", between=[a.id, b.id])


POINT_MIN = 1.5  # a feature points to an action when it multiplies the action's odds at least this much
FACT_SIGNALS = 2  # moved signals named in the step: the first to move, and what followed


def known(context: Context | None, ticket_at: datetime, pointers: list[str] | None = None) -> str:
    """What is already known about why now, for the step to start from instead of sending the engineer to look:
    "Known: KV cache usage 0.55 -> 0.98 from 14:02, 3 min before the ticket; deploy 'router v2.3.1' landed 13:58,
    4 min before it moved. They point to Rollback (a recent deploy change) or Scale out (saturation moving up)." The
    signals that moved the bad way, earliest first, the change that landed last before the first of them (else the
    newest change), and the actions the context's features favour (`pointers`). "" when the context holds none."""
    if context is None:
        return ""
    moved = [m for m in (context.telemetry.moved if context.telemetry else []) if m.bad][:FACT_SIGNALS]
    facts = [describe(m, ticket_at) for m in moved]
    first = moved[0].onset if moved else None
    trigger = last_change_before(context.changes, first) if first is not None else None
    if change := trigger or max((r.change for r in context.changes), key=lambda c: c.at, default=None):
        if trigger is not None and first is not None:
            rel = f"{round((first - change.at).total_seconds() / 60)} min before it moved"
        else:
            minutes = round((aware(ticket_at) - change.at).total_seconds() / 60)
            rel = f"{minutes} min before the ticket" if minutes >= 0 else f"{-minutes} min after the ticket"
        facts.append(f"{change.describe()} landed {change.at:%H:%M}, {rel}")
    if alert := next((a for a in context.concurrent if a.same_service and a.open), None):
        facts.append(f"{alert.title[:100]} firing since {alert.since:%H:%M}")
    if not facts:
        return ""
    point = f" They point to {' or '.join(pointers)}." if pointers else ""
    return "Known: " + "; ".join(facts) + "." + point


class StepRejected(ValueError):
    """The LLM's phrasing of the step dropped or added a ticket entity; the message says which."""


def check_step(phrasing: str, rule_step: str) -> None:
    """The LLM's phrasing keeps every entity the rule's step names and adds none (the answer it came from has
    already passed `bot.triage.validate.check_answer`: no secrets, links or mentions)."""
    want, got = entities_in(rule_step), entities_in(phrasing)
    if missing := want - got:
        raise StepRejected(f"the LLM's step drops {', '.join(sorted(missing))}")
    if extra := got - want:
        raise StepRejected(f"the LLM's step adds {', '.join(sorted(extra))}")


class StepWriter:
    """The draft's first step and who wrote it: the rule's, or the LLM's phrasing of it once it is measured."""

    def __init__(
        self, taxonomy: Taxonomy, playbooks: PlaybookLibrary, trainer: Trainer, margin: float
    ) -> None:
        self.taxonomy, self.playbooks, self.trainer, self.margin = taxonomy, playbooks, trainer, margin

    def write(
        self,
        ticket: Ticket,
        text: str,
        labels: dict[str, LabelDecision],
        playbook: Playbook,
        llm_step: str | None,
        model: str,
        hypotheses: list[object] | None = None,
        context: Context | None = None,
        evidence: list[str] | None = None,
    ) -> tuple[str, Literal["llm", "rule"]]:
        """`text` is the redacted ticket text: entities are read from what may be shown. Actions are the
        hypotheses where the draft has them (what the engineer acts on), else the root causes. What the context
        already shows (`known`) opens the step, whoever phrased the rest."""
        e = extract(text, ticket.service, ticket.created_at)
        hyps = action_hypotheses(hypotheses or [], self.taxonomy) or root_cause_hypotheses(
            labels, self.taxonomy, self.playbooks
        )
        rule = first_step(e, playbook, self.playbooks, hyps, self.margin)
        step, source = rule.text, cast(Literal["llm", "rule"], "rule")
        # Validated and measured, both: a phrasing that names other things than the ticket's, or a model whose
        # steps engineers have not kept more often than the rule's (never measured: ratio 1), is not shown.
        if usable_text(llm_step) and self.trainer.agreement.step_witness(model) > 1.0:
            try:
                check_step(llm_step or "", rule.text)
                step, source = llm_step or "", cast(Literal["llm", "rule"], "llm")
            except StepRejected:
                pass
        facts = known(context, ticket.created_at, self.pointers(evidence or []))
        return (f"{facts} {step}" if facts else step), source

    def pointers(self, feats: list[str]) -> list[str]:
        """The action each why-now feature favours most, by its odds now (the operators' prior moved by
        verdicts), where that is at least POINT_MIN: "Rollback (a recent deploy change)"."""
        book = getattr(self.trainer, "evidence", None)
        cats = self.taxonomy.mitigation.categories if self.taxonomy.mitigation else {}
        if book is None or not cats:
            return []
        best: dict[str, tuple[float, list[str]]] = {}
        for f in feats:
            odds = {a: book.ratio([f], MITIGATION, a) for a in cats}
            a = max(odds, key=lambda x: odds[x])
            if odds[a] >= POINT_MIN:
                r, fs = best.get(a, (0.0, []))
                best[a] = (max(r, odds[a]), [*fs, f])
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        return [f"{cats[a].title or a} ({describe_evidence(fs)})" for a, (_, fs) in ranked]
