"""What an eval run is made of: its configuration, the replay rule a case sees history by, one case's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.models import HistoricalIncident, TriageDraft
from bot.visibility import visible_from

METHODS = ("majority", "knn", "classifier", "llm", "llm+retrieval", "combined")
LLM_METHODS = {"llm", "llm+retrieval", "combined"}
PLAYBOOK_METHODS = ("classifier", "combined")  # the methods whose draft (the product's) chooses a playbook
# What counts as right, named wherever a number depends on it (multi-label fields have both).
EXACT_SET = "exact label set"
TOP_IN_GOLD = "top label in gold set"


@dataclass
class EvalConfig:
    methods: tuple[str, ...] = METHODS
    k: int = 5
    limit: int | None = None
    repeat: int = 1
    test_fraction: float = 0.3
    # Retrain once this many incidents visible at the case have joined the history since the last training (the bot
    # retrains as verdicts arrive). Counted in history, not in cases: a run thinned with --limit would otherwise
    # decide its later cases with a model years out of date.
    retrain_every: int = 25
    out: Path = Path("eval-results")
    # Replay history by what was visible when (bot.visibility); False: cut by opening time alone, which shows the
    # fixes and labels of incidents still open at the case (kept only to measure that leak).
    visibility: bool = True
    # Hours after which an incident with no resolved time counts as resolved; None: the setting (7 days).
    unresolved_delay_h: float | None = None
    # Hours after a case opened when its verdict reaches the LLM's tally; None: when the case resolves.
    verdict_delay_h: float | None = None
    # Share of cases an engineer gives a verdict on (the rest never reach the bot), drawn by a hash of the case id.
    verdict_rate: float = 1.0
    # "test": the most recent `test_fraction` (the reported figures); "validation": the `validation_fraction` just
    # before it, for design choices (its cases never see test incidents: they are newer).
    split: str = "test"
    validation_fraction: float = 0.2
    # "all" cases of the split, or only those whose own action is known ("with-action": the action's figures with
    # the LLM on every such case, at the cost of a fraction of the run); the history is the same either way.
    cases: str = "all"
    # Cold start (evals/cold_start.py): the ids of the only history incidents that keep their labels (every other
    # record is in the history unlabelled, for retrieval), None: every label, as the replay has them.
    labelled_ids: frozenset[str] | None = None


# A verdict as the engineer gives it: the draft, the labels they kept, the playbook their fix maps to.
Verdict = tuple[TriageDraft, dict[str, list[str]], str | None]


@dataclass(frozen=True)
class Replay:
    """What a case opened at `t` may know of the history: `bot.visibility`'s rule, in one place for the harness."""

    rule: bool
    delay: timedelta

    def known_from(self, inc: HistoricalIncident) -> datetime:
        """When the incident's outcome became known (with the rule off: when it opened)."""
        return visible_from(inc, self.delay) if self.rule else inc.created_at

    def known(self, inc: HistoricalIncident, t: datetime) -> bool:
        return self.known_from(inc) < t

    def store_filter(self, t: datetime) -> datetime | None:
        """The store's `visible_at` filter for a case opened at `t` (its `visible_ts` is this rule's output)."""
        return t if self.rule else None


@dataclass
class CaseResult:
    id: str
    rep: int
    created_at: str
    input: str
    gold: dict[str, list[str]]
    pred: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # method -> field -> labels
    confidence: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> field -> confidence
    abstained: dict[str, dict[str, bool]] = field(default_factory=dict)  # method -> field -> "not sure"
    retrieved: list[str] = field(default_factory=list)
    relevant: list[bool] = field(default_factory=list)
    latency_s: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    llm_status: dict[str, str] = field(default_factory=dict)
    llm_error: dict[str, str] = field(default_factory=dict)
    playbook: dict[str, str] = field(default_factory=dict)  # method -> the playbook its draft chose
    playbook_fit: dict[str, bool] = field(
        default_factory=dict
    )  # method -> its scope lists the gold root cause
    playbook_real: str | None = (
        None  # the playbook the real resolution maps to (bot.triage.resolutions), if any
    )
    has_resolution: bool = False
    # What the triage-time text already states (evals.after_the_fact): scored apart as well
    hindsight: list[str] = field(default_factory=list)
    mitigation_cosine: float | None = None
    mitigation_rouge_l: float | None = None
    # The case's own mitigation action (its labels, else its resolution text) and each method's (evals.actions)
    action_gold: str | None = None
    action_source: str | None = None
    action: dict[str, dict[str, Any]] = field(default_factory=dict)
    # method -> field -> its conformal set
    label_sets: dict[str, dict[str, list[str]]] = field(default_factory=dict)
