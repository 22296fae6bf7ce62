"""triage(ticket) -> TriageDraft, the whole way through: redact -> retrieve -> draft -> validate + combine."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel

from bot.config import Settings
from bot.models import DraftPlaybook, LabelDecision, LLMUsage, SimilarIncident, Ticket, TriageDraft
from bot.store.embeddings import get_embedder
from bot.store.history import HistoryError, HistoryStore
from bot.taxonomy import Taxonomy
from bot.triage.decision import PLAYBOOK, Situation
from bot.triage.drafting import Drafter, Prompts
from bot.triage.llm import build_chat_model, model_label
from bot.triage.playbooks import Playbook, PlaybookLibrary
from bot.triage.redact import Redaction, Redactor, redactor
from bot.triage.resolutions import ResolutionMapper
from bot.triage.retrieval import Retrieved, retrieve_all
from bot.triage.trainer import Trainer, VerdictSource, trainer_for
from bot.triage.validate import AnswerRejected, check_answer
from bot.triage.vote import decide, knn_votes, valid_labels

NOTES_FROM_HISTORY = 3
# Say of the neighbours' mapped fixes beside the labels' scope match: the ratio of how often each alone names an
# incident's own mapped fix on older history (0.22 vs 0.11 on cloud-labeled; `python -m evals.playbook_choice`).
FIXES_WEIGHT = 1.9


@dataclass(frozen=True)
class Prepared:
    redaction: Redaction  # of the ticket's text as triaged (title and text, cut to max_text_chars)
    vector: np.ndarray  # its embedding


class TicketError(ValueError):
    """A ticket the bot cannot triage (e.g. no text); the message says why."""


def usable_text(text: str | None, min_words: int = 5) -> bool:
    """Free text worth showing an engineer: enough words, not a degenerate repetition."""
    if not text:
        return False
    words = text.split()
    if len(words) < min_words or max(len(w) for w in words) > 40:
        return False
    return len({w.lower() for w in words}) / len(words) >= 0.6


def require_text(ticket: Ticket) -> str:
    text = ticket.body
    if not text.strip():
        raise TicketError(f"ticket {ticket.id} has no title or text to triage")
    return text


def detect_privacy(taxonomy: Taxonomy, text: str) -> str | None:
    """The matched phrase if the ticket suggests personal-data exposure."""
    for rx in taxonomy.privacy_regexes:
        if m := rx.search(text):
            return m.group(0)
    return None


class Triager:
    def __init__(
        self,
        settings: Settings,
        store: HistoryStore,
        model: BaseChatModel | None,
        taxonomy: Taxonomy | None = None,
        playbooks: PlaybookLibrary | None = None,
        prompts: Prompts | None = None,
        trainer: Trainer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.taxonomy = taxonomy or Taxonomy.load(settings.taxonomy_path)
        self.playbooks = playbooks or PlaybookLibrary.load(settings.playbooks_dir)
        self.model = model
        self.redactor: Redactor = redactor(
            tuple(sorted(settings.redact_patterns.items())), settings.redact_names
        )
        self.drafter = (
            Drafter(
                settings, model, self.taxonomy, self.playbooks, prompts or Prompts.load(settings.prompts_dir)
            )
            if model is not None
            else None
        )
        self.trainer = trainer or Trainer(self.taxonomy, None, None)
        self._mapper: ResolutionMapper | None = None

    @property
    def mapper(self) -> ResolutionMapper:
        """Past resolutions -> the playbook that fits them (built on first use: it embeds the playbooks)."""
        if self._mapper is None:
            self._mapper = ResolutionMapper(self.playbooks)
        return self._mapper

    @classmethod
    def from_settings(
        cls, settings: Settings, store: HistoryStore | None = None, verdicts: VerdictSource | None = None
    ) -> Triager:
        store = store or HistoryStore(settings)
        taxonomy = Taxonomy.load(settings.taxonomy_path)
        trainer = trainer_for(settings, store, taxonomy, verdicts)
        if settings.learned_decision and not trainer.load():
            trainer.request()  # in the background: the vote decides until it is done
        return cls(settings, store, build_chat_model(settings), taxonomy, trainer=trainer)

    # ---- stages -------------------------------------------------------------------------------------------
    def prepare(self, ticket: Ticket) -> str:
        return require_text(ticket)[: self.settings.max_text_chars]

    def similar(
        self, ticket: Ticket, text: str | None = None, before: datetime | None = None
    ) -> list[SimilarIncident]:
        return self.retrieve(ticket, text, before).shown

    def retrieve(
        self,
        ticket: Ticket,
        text: str | None = None,
        before: datetime | None = None,
        query: np.ndarray | None = None,
    ) -> Retrieved:
        s = self.settings
        return retrieve_all(
            self.store,
            text if text is not None else self.prepare(ticket),
            query=query,
            k=s.retrieval_k,
            exclude_ids=(ticket.id,),
            min_score=s.retrieval_min_score,
            near_duplicate=s.near_duplicate_score,
            min_with_fix=s.retrieval_min_with_fix,
            before=before,
        )

    def prepared(self, ticket: Ticket) -> Prepared:
        """The ticket's one redaction and one embedding (of the redacted text, as retrieval searches with it:
        history is stored redacted). Storm grouping compares the same vector; `triage(prepared=...)` reuses both."""
        red = self.redactor.redact(self.prepare(ticket))
        return Prepared(red, get_embedder().embed([red.text])[0])

    def shown(self, ticket: Ticket) -> Ticket:
        """The ticket as posted to Slack or kept as history: redacted unless configured otherwise."""
        return self.redacted(ticket) if self.settings.redact_in_slack else ticket

    def redacted(self, ticket: Ticket) -> Ticket:
        # The sender's payload is not redacted field by field: only its link to the full ticket is kept.
        link = (ticket.raw or {}).get("html_url")
        return ticket.model_copy(
            update={
                "title": self.redactor.redact(ticket.title).text,
                "text": self.redactor.redact(ticket.text).text,
                "raw": {"html_url": self.redactor.redact(link).text} if isinstance(link, str) else None,
            }
        )

    def triage(
        self,
        ticket: Ticket,
        *,
        use_llm: bool = True,
        before: datetime | None = None,
        history_required: bool = True,
        query: np.ndarray | None = None,
        prepared: Prepared | None = None,
    ) -> TriageDraft:
        """Draft a triage. `before` limits history to incidents older than it (evals: no look-ahead).

        With `history_required=False` (the running bot) an unusable history store gives a draft without similar
        incidents and a warning instead of an error, so the ticket is still posted. `prepared` (or `query`, the
        embedding alone) is what the caller already has (`prepared()`: storms and retrieval share it)."""
        t0 = time.perf_counter()
        text = self.prepare(ticket)
        red = prepared.redaction if prepared is not None else self.redactor.redact(text)
        query = prepared.vector if prepared is not None else query
        warnings: list[str] = []
        try:
            # Retrieval runs in process; it embeds the redacted text, as history is stored redacted.
            found = self.retrieve(ticket, red.text, before, query)
        except HistoryError as e:
            if history_required:
                raise
            found = Retrieved([], query=query)
            warnings.append(f"History store unavailable, no similar incidents: {e}"[:300])
        similar = found.shown
        answer: Any = None
        if self.drafter is not None and use_llm:
            result = self.drafter.draft(red.text if self.settings.redact_llm_input else text, similar)
            answer, usage = result.answer, result.usage
            if answer is not None:
                answer, usage = self._validated(answer, usage, red, similar)
        else:
            usage = LLMUsage(model=model_label(self.model), status="skipped")
        draft = self.combine(
            ticket,
            text,
            similar,
            answer,
            usage,
            neighbours=found.neighbours,
            redacted=red.text,
            vector=found.query,
        )
        if usage.status == "rejected":
            warnings.append(f"LLM answer discarded: {usage.error}")
        draft.warnings, draft.redactions = warnings, red.counts
        draft.latency_s = round(time.perf_counter() - t0, 4)
        return draft

    def _validated(
        self, answer: Any, usage: LLMUsage, red: Redaction, similar: list[SimilarIncident]
    ) -> tuple[Any, LLMUsage]:
        try:
            check_answer(answer, red, similar, self.redactor)
            return answer, usage
        except AnswerRejected as e:
            return None, usage.model_copy(update={"status": "rejected", "error": str(e)})

    def combine(
        self,
        ticket: Ticket,
        text: str,
        similar: list[SimilarIncident],
        answer: Any,
        usage: LLMUsage,
        *,
        neighbours: list[SimilarIncident] | None = None,
        redacted: str | None = None,
        vector: np.ndarray | None = None,
    ) -> TriageDraft:
        """Validate the LLM's answer against the taxonomy and playbooks and merge it with retrieval evidence."""
        tax = self.taxonomy
        labels = self.decide_labels(ticket, redacted or text, neighbours or similar, answer, usage, vector)

        privacy_hit = detect_privacy(tax, text)
        if privacy_hit and tax.privacy:
            for field, forced in (("symptom", tax.privacy.symptom), ("severity", tax.privacy.severity)):
                if forced and field in labels:
                    d = labels[field]
                    labels[field] = d.model_copy(  # privacy never abstains: stop the spread first
                        update={"label": forced, "labels": [forced, *[x for x in d.labels if x != forced]],
                                "confidence": 1.0, "source": "rule", "abstained": False}
                    )  # fmt: skip

        choice = self._choose_playbook(labels, answer, privacy_hit, similar, usage.model)
        playbook = choice.playbook
        llm_step = getattr(answer, "triage_step", None)
        if usable_text(llm_step) and not privacy_hit:
            triage_step, step_source = llm_step, "llm"
        else:
            triage_step, step_source = playbook.first_check or playbook.steps[0].action, "rule"

        notes = [
            f"Similar incident '{x.title}' (similarity {x.score:.2f}) was fixed by: {' '.join(x.resolution.split())[:300]}"
            for x in similar
            if x.resolution.strip()
        ][:NOTES_FROM_HISTORY]
        notes += [
            f"LLM suggests: {m}" for m in getattr(answer, "mitigation_steps", None) or [] if usable_text(m)
        ]

        ok = usage.status in ("ok", "repaired")
        rationale = getattr(answer, "rationale", "") or ""
        return TriageDraft(
            ticket_id=ticket.id,
            taxonomy=tax.name,
            labels=labels,
            privacy_exposure=bool(privacy_hit),
            privacy_reason=f"ticket mentions '{privacy_hit}'" if privacy_hit else None,
            similar=similar,
            triage_step=triage_step,
            triage_step_source=step_source,  # type: ignore[arg-type]
            playbook=DraftPlaybook(
                id=playbook.id,
                title=playbook.title,
                source=choice.source,  # type: ignore[arg-type]
                rule_choice=choice.rule_choice,
                llm_choice=choice.llm_choice,
                steps=playbook.steps,
                adapted_notes=notes,
            ),
            rationale=rationale if usable_text(rationale) else "",
            kind="llm" if ok else "retrieval-only",
            llm=usage,
        )

    def decide_labels(
        self,
        ticket: Ticket,
        text: str,
        neighbours: list[SimilarIncident],
        answer: Any,
        usage: LLMUsage,
        vector: np.ndarray | None = None,
    ) -> dict[str, LabelDecision]:
        """Per field: the learned decision where a model is trained for it, else the vote (and why)."""
        tax, s = self.taxonomy, self.settings
        learned = self.trainer.current if s.learned_decision else None
        llm_ok = answer is not None and usage.status in ("ok", "repaired")
        X = None
        if learned is not None and learned.fields:
            # The retrieval's embedding of the redacted text; embedded here only if the history was down.
            vec = vector if vector is not None else get_embedder().embed([text])[0]
            X = learned.features(text, ticket.service, ticket.source, vec)
        labels: dict[str, LabelDecision] = {}
        for field in tax.fields:
            llm_label = getattr(answer, field, None) if answer is not None else None
            votes = knn_votes(neighbours, field, tax)
            if learned is not None and field in learned.fields:
                llm_labels = valid_labels(field, tax, llm_label) if llm_ok else []
                witness = self.trainer.agreement.witness(usage.model, field) if llm_labels else None
                proba = learned.proba(field, X)
                labels[field] = learned.fields[field].decide(proba, votes, llm_labels, witness)
            else:
                d = decide(field, tax, llm_label, votes, s.llm_weight)
                why = learned.fallback.get(field) if learned is not None else self.trainer.status
                labels[field] = d.model_copy(update={"fallback": why if s.learned_decision else None})
        return labels

    def record_verdict(
        self, draft: TriageDraft, final: dict[str, list[str]], fix_playbook: str | None = None
    ) -> None:
        """An engineer's labels (and the playbook their fix maps to): how often this model's own label and playbook
        were right, against the choice without it (its say next time)."""
        self.trainer.agreement.observe(draft, final, fix_playbook)

    def fixes_vote(self, similar: list[SimilarIncident]) -> dict[str, float]:
        """Share of similarity mass per playbook among the shown incidents whose fix maps to one."""
        votes: dict[str, float] = defaultdict(float)
        for s, m in zip(similar, self.mapper.map_many([s.resolution for s in similar]), strict=True):
            if m is not None:
                votes[m.playbook_id] += max(s.score, 0.0) ** 2
        total = sum(votes.values())
        return {k: v / total for k, v in votes.items()} if total else {}

    def fix_playbook(self, fix: str | None) -> str | None:
        """The playbook an engineer's account of the fix maps to, if any."""
        m = self.mapper.map(fix) if fix and fix.strip() else None
        return m.playbook_id if m else None

    def _choose_playbook(
        self,
        labels: dict[str, LabelDecision],
        answer: Any,
        privacy_hit: str | None,
        similar: list[SimilarIncident],
        model: str = "",
    ) -> PlaybookChoice:
        lib, tax = self.playbooks, self.taxonomy
        if privacy_hit and tax.privacy and (p := lib.get(tax.privacy.playbook)):
            return PlaybookChoice(p, "rule")
        decided = {f: tax.to_default(f, d.label) for f, d in labels.items()}
        weights = {f: d.confidence for f, d in labels.items()}
        norm = sum(weights.values()) or 1.0
        fixes = self.fixes_vote(similar)
        # How well its scope fits the decided labels (0..1), plus FIXES_WEIGHT times the share of similar incidents
        # fixed its way: on older history the neighbours' fixes name the right playbook about twice as often.
        scored = {p.id: p.match(decided, weights) / norm + FIXES_WEIGHT * fixes.get(p.id, 0.0)
                  for p in lib.by_id.values()}  # fmt: skip
        best_id = max(scored, key=lambda i: scored[i])
        rule, source = (
            (lib.by_id[best_id], "retrieval") if scored[best_id] > 0 else (lib.fallback(), "default")
        )
        pick = lib.get(getattr(answer, "playbook", "") or "")
        if pick is None:
            return PlaybookChoice(rule, source, rule.id)
        if pick.id == rule.id:
            return PlaybookChoice(rule, "llm+retrieval", rule.id, pick.id)
        # They differ: the LLM's pick wins once verdicts' fixes show it right more often than the choice without it.
        say = self.trainer.agreement.witness(model, PLAYBOOK)
        if say[Situation.LLM_OTHER] > say[Situation.TOP_OTHER]:
            return PlaybookChoice(pick, "llm", rule.id, pick.id)
        return PlaybookChoice(rule, source, rule.id, pick.id)


@dataclass(frozen=True)
class PlaybookChoice:
    playbook: Playbook
    source: str
    rule_choice: str | None = None  # without the LLM
    llm_choice: str | None = None  # the LLM's pick
