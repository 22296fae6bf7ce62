"""Typed domain models shared by every stage of the pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from bot.clock import aware, utcnow

# Where a conclusion in a draft came from, so an engineer knows how much to trust it.
Source = Literal["llm", "retrieval", "llm+retrieval", "classifier", "classifier+llm", "rule", "default"]


class Link(BaseModel):
    """A page the sender points to (its incident, a runbook, the graph that fired). The URL is untrusted: the post
    makes it a link only if it is plain http(s)."""

    label: str
    url: str


class SenderSeverity(BaseModel):
    """The sender's own word for how bad it is (PagerDuty priority and urgency, Opsgenie priority, an Alertmanager
    `severity` label, Statuspage impact), and the taxonomy severity it maps to where `severity_map` says so."""

    name: str  # what the sender calls it: priority, urgency, severity, impact
    value: str
    label: str | None = None


class Ticket(BaseModel):
    """A new incident as the bot receives it: only what is known at triage time."""

    id: str = Field(min_length=1, max_length=200)
    title: str = ""
    text: str = ""
    service: str | None = None
    component: str | None = None
    source: str = "manual"
    created_at: datetime = Field(default_factory=utcnow)
    raw: dict[str, Any] | None = None
    link: str | None = None  # the sender's page for this incident
    links: list[Link] = Field(default_factory=list)  # runbooks, generator and Alertmanager URLs, ...
    severity: list[SenderSeverity] = Field(default_factory=list)  # most telling first
    occurrence: int = Field(default=1, ge=1)  # the sender's incident fired again after it resolved: 2, 3, ...
    previous_key: str | None = None  # the ticket of its previous occurrence

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        # Naive timestamps in incident feeds are UTC by convention; comparisons need aware datetimes.
        return aware(v)

    @property
    def sender_label(self) -> str | None:
        """The taxonomy severity the sender's own severity maps to (the first that maps)."""
        return next((s.label for s in self.severity if s.label), None)

    @property
    def body(self) -> str:
        """Title and text as one string: what is embedded and what the LLM reads."""
        return "\n".join(p for p in (self.title.strip(), self.text.strip()) if p)


class PreLabels(BaseModel):
    """An LLM's labels for a past incident (`incibot history prelabel`), kept apart from the engineers' `labels`:
    they train the classifier only at the weight their measured agreement with the engineers earns
    (`bot.triage.prelabels`)."""

    model: str  # which model said them: agreement is measured, and weights given, per model
    labels: dict[str, list[str]] = Field(default_factory=dict)  # field -> taxonomy-valid labels
    at: datetime = Field(default_factory=utcnow)


class HistoricalIncident(Ticket):
    """A past incident: the ticket plus what was learnt later and how it was fixed."""

    labels: dict[str, list[str]] = Field(default_factory=dict)  # engineers' labels: the truth
    llm_labels: PreLabels | None = None
    resolution: str = ""
    later_text: str = ""
    resolved_at: datetime | None = None
    taxonomy: str | None = None
    # Who gave its labels after it was imported ("slack:U123", `/triage label`). Not `source`: that stays the
    # sender, which retrieval's duplicate check and the classifier's features read.
    labelled_by: str | None = None

    def ticket(self) -> Ticket:
        """Only what was known at triage time: never labels, resolution, later updates or the raw payload."""
        return Ticket.model_validate(self.model_dump(include=set(Ticket.model_fields) - {"raw"}))

    @field_validator("resolved_at")
    @classmethod
    def _aware_resolved(cls, v: datetime | None) -> datetime | None:
        return v if v is None else aware(v)


class FixSummary(BaseModel):
    """What was done to fix a past incident: the action (a mitigation id of the taxonomy), the sentence that says so
    (empty when the action came from labels or a verdict without text) and when, where the text says."""

    action: str
    sentence: str = ""
    when: str = ""
    source: Literal["label", "verdict", "text"] = "text"


class SimilarIncident(BaseModel):
    id: str
    title: str
    score: float = Field(description="cosine similarity, 1.0 = identical")
    service: str | None = None
    created_at: datetime | None = None
    link: str | None = None
    resolution: str = ""
    labels: dict[str, list[str]] = Field(default_factory=dict)
    fix: FixSummary | None = None  # set by triage (bot.triage.mitigation); None: no fix recorded
    source: str = ""  # the history record's: "feedback:correct" when an engineer's verdict labelled it


class LabelDecision(BaseModel):
    field: str
    label: str
    labels: list[str] = Field(default_factory=list, description="all labels, for multi-label fields")
    confidence: float = Field(ge=0.0, le=1.0)
    source: Source
    llm_label: str | list[str] | None = None
    retrieval_label: str | None = None
    retrieval_votes: dict[str, float] = Field(default_factory=dict)
    abstained: bool = False  # below the field's threshold: posted as "not sure: A or B?"
    candidates: list[str] = Field(default_factory=list)  # the likeliest labels, best first
    scores: dict[str, float] = Field(default_factory=dict)  # the candidates' stacked probabilities (sum <= 1)
    fallback: str | None = None  # why the vote decided this field and not a trained classifier
    # The classifier's own view before the LLM's label was weighed: verdicts measure the LLM against it.
    prior_label: str | None = None
    prior_confidence: float | None = None
    llm_prior_confidence: float | None = None  # what the classifier gave the LLM's (first) label
    # The candidates' calibrated probabilities before the LLM's say and the why-now evidence (bot/triage/evidence.py
    # measures each feature's worth against them); empty where the vote decided.
    calibrated: dict[str, float] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list)  # features whose measured odds ratio moved this label
    # A conformal prediction set at `set_coverage` (an ordinal field's as a contiguous range, most severe first):
    # what an abstaining field can still say ("SEV2-SEV3 (85%)"). Empty: no set (vote, multi-label, untrained).
    label_set: list[str] = Field(default_factory=list)
    set_coverage: float | None = None


class PlaybookStep(BaseModel):
    action: str
    check: str = ""


class DraftPlaybook(BaseModel):
    id: str
    title: str
    source: Source
    steps: list[PlaybookStep]
    adapted_notes: list[str] = Field(
        default_factory=list,
        description="ticket-specific advice: the LLM's steps and fixes of similar incidents",
    )
    # Both candidates, so a verdict's fix can measure the LLM's pick against the choice without it.
    rule_choice: str | None = None
    llm_choice: str | None = None
    # Why this playbook, where it is not the one the top mitigation hypothesis leads to (or that it is).
    reason: str = ""


class LLMUsage(BaseModel):
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0
    # rejected: valid JSON that broke a content rule (bot/triage/validate.py); unavailable: endpoint failed or circuit open
    status: Literal["ok", "repaired", "invalid", "rejected", "unavailable", "skipped"] = "ok"
    error: str | None = None


class FixEvidence(BaseModel):
    """A similar past incident that was fixed by a hypothesis's action (its link, and the sentence that says so)."""

    id: str
    title: str
    score: float
    link: str | None = None
    sentence: str = ""


class MitigationHypothesis(BaseModel):
    """One action that may mitigate the ticket: its calibrated probability and why (bot/triage/hypotheses.py)."""

    action: str  # a mitigation id of the taxonomy
    title: str = ""
    probability: float = Field(ge=0.0, le=1.0)
    similar: list[FixEvidence] = Field(default_factory=list)  # similar incidents fixed this way
    ticket_terms: list[str] = Field(default_factory=list)  # words of the ticket that point to it
    # Without a learned action, from the neighbours alone: how many of them were fixed this way, out of how many
    # (a share of a handful is not odds: "1 of 5 similar incidents", never "100%").
    fixed_count: int | None = None
    of_count: int | None = None
    playbooks: list[str] = Field(default_factory=list)  # the playbooks the taxonomy maps the action to
    # Why-now features that moved its odds ("change:deploy x3.00"; bot/triage/evidence.py), as on a label decision.
    evidence: list[str] = Field(default_factory=list)


class MitigationHypotheses(BaseModel):
    """What may fix the ticket: the conformal set at `coverage` (best first, at most three shown), or "no clear
    precedent" when even the likeliest action is below its threshold (`abstained`)."""

    hypotheses: list[MitigationHypothesis] = Field(default_factory=list)
    abstained: bool = True
    source: Literal["classifier", "vote", "prior", "none"] = "none"  # prior: the history's base rate alone
    coverage: float | None = None  # nominal coverage of the set; None: no conformal set (vote, untrained)
    conformal_set: list[str] = Field(
        default_factory=list
    )  # every action in the set (more than shown if above 3)
    from_set: bool = (
        False  # the hypotheses shown are the set's (else the likeliest: the set held one or none)
    )
    candidates: list[str] = Field(default_factory=list)  # the three likeliest actions, best first
    confidence: float = 0.0  # calibrated probability of the likeliest (vote: its share, uncalibrated)
    votes: dict[str, float] = Field(
        default_factory=dict
    )  # the neighbours' fixes: similarity share per action
    note: str = ""  # why there is no learned decision, or "no clear precedent"
    # Every action's probability before the why-now evidence moved it: what verdicts measure the evidence against.
    calibrated: dict[str, float] = Field(default_factory=dict)


class TimeEstimate(BaseModel):
    """Typical time to mitigate (resolved - opened) of comparable past incidents: the median and an 80% range, in
    minutes, from the estimator the eval showed beats the base rate (`ttm_estimator`; evals/time_to_mitigate.py)."""

    method: str
    minutes: float
    low: float
    high: float
    n: int  # past incidents it is read from


class TriageDraft(BaseModel):
    ticket_id: str
    taxonomy: str
    labels: dict[str, LabelDecision]
    privacy_exposure: bool = False
    privacy_reason: str | None = None
    similar: list[SimilarIncident] = Field(default_factory=list)
    triage_step: str
    triage_step_source: Source
    playbook: DraftPlaybook
    rationale: str = ""
    kind: Literal["llm", "retrieval-only"] = "llm"
    llm: LLMUsage
    warnings: list[str] = Field(default_factory=list)  # shown on the post: what went wrong while drafting
    redactions: dict[str, int] = Field(default_factory=dict)  # placeholder kind -> values hidden
    latency_s: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
    # Why now: recent changes and what else fires on the service, looked up when it was posted. Shown, never
    # used by the decision (yet): None where the lookup failed or was not made.
    context: Context | None = None
    # The context's features the decision read (bot/triage/evidence.py); a verdict tallies their worth.
    evidence: list[str] = Field(default_factory=list)
    ttm: TimeEstimate | None = None  # shown only when `ttm_estimator` is set
    mitigation: MitigationHypotheses | None = None  # None: the taxonomy has no mitigation vocabulary

    def label(self, field: str) -> str | None:
        d = self.labels.get(field)
        return d.label if d else None


class Feedback(BaseModel):
    """An engineer's verdict on a draft."""

    action: Literal["confirm", "correct", "reject"]
    user_id: str
    labels: dict[str, list[str]] | None = None
    fix: str | None = None
    reason: str | None = None
    fix_playbook: str | None = (
        None  # the playbook the fix maps to (bot.triage.resolutions), set when it is stored
    )


class LabelGuess(BaseModel):
    """The current classifier's probability for one label of one field (`bot.triage.active.Probabilities`)."""

    label: str
    probability: float = Field(ge=0.0, le=1.0)


class LabelCandidate(BaseModel):
    """A past incident offered for labelling (`/triage label`): what was known at triage time, its labels so far
    and the classifier's guesses (field -> labels, likeliest first; empty when fetched by id alone)."""

    id: str
    title: str = ""
    service: str | None = None
    created_at: datetime
    excerpt: str = ""  # the start of the triage-time text, untrusted: escaped wherever it is shown
    labels: dict[str, list[str]] = Field(default_factory=dict)
    guesses: dict[str, list[LabelGuess]] = Field(default_factory=dict)


class LabelBatch(BaseModel):
    """The past incidents active learning asks about next, out of a history of `history_size` incidents.
    `no_guess`: per field without a classifier yet, why (too few labels, one class)."""

    history_size: int
    candidates: list[LabelCandidate] = Field(default_factory=list)
    no_guess: dict[str, str] = Field(default_factory=dict)


class Verdict(BaseModel):
    """One engineer verdict with the draft it judged (typed rows out of the store)."""

    ticket_key: str
    action: str  # confirm | correct | reject
    user_id: str
    labels: dict[str, list[str]] | None
    created_at: datetime
    draft: TriageDraft | None
    fix_playbook: str | None = None


class Mode(StrEnum):
    LLM = "llm"
    RETRIEVAL_ONLY = "retrieval-only"


class ModeChange(BaseModel):
    mode: Mode
    user_id: str
    created_at: datetime


class SenderIncident(BaseModel):
    """What the bot knows of one sender incident (an Alertmanager group, a PagerDuty incident...): stored per
    sender id, its occurrences keyed `<thread>#<n>` (bot/intake/occurrences.py)."""

    thread: str
    source: str
    key: str  # ticket key of the current occurrence
    number: int = 1
    open: bool = True
    seen: list[str] = Field(default_factory=list)  # item ids already shown (all occurrences, newest last)
    updates: int = 0  # thread replies of the current occurrence so far
    components: list[str] = Field(default_factory=list)  # Statuspage: components of the incident
    last_at: datetime  # when the sender last said something new
    version: int = 0  # optimistic concurrency: a write succeeds only from the version it read
    held_resolution: str | None = (
        None  # a resolve that came before its open (number 0): applied when it opens
    )


class ChangeKind(StrEnum):
    """What changed on a service (a change event's `kind`)."""

    DEPLOY = "deploy"
    CONFIG = "config"
    FLAG = "flag"
    MODEL = "model"
    INFRA = "infra"


class ChangeEvent(BaseModel):
    """One change to a service, as a change sender reported it (bot/intake/changes/): stored once per
    (source, id), redacted like ticket text."""

    id: str = Field(min_length=1, max_length=200)
    source: str = "change"  # the change sender: change (generic), github, gitlab, argocd, launchdarkly
    service: str = Field(min_length=1, max_length=200)  # mapped (change_service_map) or the sender's own name
    kind: ChangeKind
    summary: str = Field(default="", max_length=500)
    at: datetime
    link: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=200)
    environment: str | None = Field(default=None, max_length=200)

    @field_validator("at")
    @classmethod
    def _aware_at(cls, v: datetime) -> datetime:
        # In UTC: SQLite keeps the wall time and drops the offset, so "21:50 +0200" must be stored as 19:50.
        return aware(v).astimezone(UTC)

    def describe(self) -> str:
        """ "deploy 'router v2.3.1' by ci-bot (production)": what changed, by whom, where."""
        what = f"{self.kind.value} '{self.summary}'" if self.summary else self.kind.value
        by = f" by {self.author}" if self.author else ""
        where = f" ({self.environment})" if self.environment else ""
        return f"{what}{by}{where}"


class RecentChange(BaseModel):
    """A change shown with a ticket: minutes before the alert (negative: stamped after it, within the skew)."""

    change: ChangeEvent
    minutes_before: float


def last_change_before(changes: Iterable[RecentChange], at: datetime) -> ChangeEvent | None:
    """The change that landed last at or before `at` (what a signal that moved then most likely followed)."""
    return max((r.change for r in changes if r.change.at <= at), key=lambda c: c.at, default=None)


class ConcurrentSignal(BaseModel):
    """Another ticket firing on the same service (or routed to the same dedicated channel) around this one."""

    key: str
    title: str
    service: str | None = None
    since: datetime
    link: str | None = None
    same_service: bool = True
    open: bool = True


class SignalKind(StrEnum):
    """What a signal says about the service: the evidence kinds of the decision (`signal:<kind>:<direction>`)."""

    ERRORS = "errors"
    LATENCY = "latency"
    TRAFFIC = "traffic"
    SATURATION = "saturation"
    QUALITY = "quality"
    COST = "cost"


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class MovedSignal(BaseModel):
    """A series that changed level inside the window, at a level shift a noise-only series rarely shows
    (bot/telemetry/changepoints.py finds it)."""

    signal: str  # the catalogue name
    title: str
    kind: SignalKind
    unit: str
    onset: datetime
    before: float
    after: float
    bad: bool  # it moved in the direction the catalogue calls bad
    labels: dict[str, str] = Field(default_factory=dict)  # the series, when a signal has several
    score: float  # the shift in robust noise units (MAD of first differences)
    # The series, thinned to at most ~60 (time, value) points: the terminal's sparkline and the thread's chart.
    trace: list[tuple[datetime, float]] = Field(default_factory=list)

    @property
    def direction(self) -> Direction:
        return Direction.UP if self.after > self.before else Direction.DOWN

    @property
    def feature(self) -> str:
        """The evidence feature the decision reads: `signal:<kind>:<up|down>`."""
        return f"signal:{self.kind.value}:{self.direction.value}"


class TelemetrySummary(BaseModel):
    """What the metrics showed around a ticket (`prometheus_url`): the signals that moved, by onset, how many
    were read, and what could not be read (never raised: a failed read is a line here)."""

    moved: list[MovedSignal] = Field(default_factory=list)  # earliest onset first
    read: int = 0  # catalogue signals read
    errors: list[str] = Field(default_factory=list)  # "<signal>: <why>", or the whole read's fault
    ticket_at: datetime | None = None  # when the ticket opened: the post says "3 min before the ticket"


class Context(BaseModel):
    """What an engineer looks at first: what changed on the service and what else is firing, within
    `change_window_min` of the ticket (bot/store/changes.py looks it up; the post shows it)."""

    service: str | None = None
    window_min: float
    changes: list[RecentChange] = Field(default_factory=list)  # newest first
    concurrent: list[ConcurrentSignal] = Field(default_factory=list)  # newest first
    more_changes: int = 0  # beyond those listed
    more_concurrent: int = 0
    # The metrics around the ticket: None where `prometheus_url` is unset (or not read yet: the first post).
    telemetry: TelemetrySummary | None = None


TriageDraft.model_rebuild()  # its `context` is defined below it
