"""Typed domain models shared by every stage of the pipeline."""

from __future__ import annotations

from datetime import datetime
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


class HistoricalIncident(Ticket):
    """A past incident: the ticket plus what was learnt later and how it was fixed."""

    labels: dict[str, list[str]] = Field(default_factory=dict)
    resolution: str = ""
    later_text: str = ""
    resolved_at: datetime | None = None
    taxonomy: str | None = None

    def ticket(self) -> Ticket:
        """Only what was known at triage time: never labels, resolution, later updates or the raw payload."""
        return Ticket.model_validate(self.model_dump(include=set(Ticket.model_fields) - {"raw"}))

    @field_validator("resolved_at")
    @classmethod
    def _aware_resolved(cls, v: datetime | None) -> datetime | None:
        return v if v is None else aware(v)


class SimilarIncident(BaseModel):
    id: str
    title: str
    score: float = Field(description="cosine similarity, 1.0 = identical")
    service: str | None = None
    created_at: datetime | None = None
    link: str | None = None
    resolution: str = ""
    labels: dict[str, list[str]] = Field(default_factory=dict)


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
    fallback: str | None = None  # why the vote decided this field and not a trained classifier
    # The classifier's own view before the LLM's label was weighed: verdicts measure the LLM against it.
    prior_label: str | None = None
    prior_confidence: float | None = None
    llm_prior_confidence: float | None = None  # what the classifier gave the LLM's (first) label


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


class LLMUsage(BaseModel):
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0
    # rejected: valid JSON that broke a content rule (bot/triage/validate.py); unavailable: endpoint failed or circuit open
    status: Literal["ok", "repaired", "invalid", "rejected", "unavailable", "skipped"] = "ok"
    error: str | None = None


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
