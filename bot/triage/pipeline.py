"""triage(ticket) -> TriageDraft: prepare (redact, embed) -> retrieve -> draft with the LLM -> validate -> decide
labels and playbook -> assemble. `Triager` orchestrates; each step lives in its own module."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel

from bot.config import Settings
from bot.models import Context, DraftPlaybook, LLMUsage, SimilarIncident, Ticket, TriageDraft
from bot.store.factory import open_history
from bot.store.vectors import HistoryError, Hit, VectorStore
from bot.taxonomy import Taxonomy
from bot.text import usable_text
from bot.triage.drafting import Drafter, Prompts, format_context
from bot.triage.evidence import features as evidence_features
from bot.triage.first_step import StepWriter
from bot.triage.hypotheses import MitigationAdvisor
from bot.triage.labels import LabelDecider
from bot.triage.llm import build_chat_model, model_label
from bot.triage.mitigation import MitigationExtractor, fix_text
from bot.triage.playbook_choice import PlaybookChooser
from bot.triage.playbook_choice import reason as playbook_reason
from bot.triage.playbooks import PlaybookLibrary
from bot.triage.prepare import Prepared, Preparer
from bot.triage.redact import Redaction, redactor
from bot.triage.retrieval import Retrieved, retrieve_all
from bot.triage.trainer import Trainer, VerdictSource, trainer_for
from bot.triage.ttm import TimeToMitigate
from bot.triage.validate import AnswerRejected, check_answer

NOTES_FROM_HISTORY = 3


class Triager:
    def __init__(
        self,
        settings: Settings,
        history: VectorStore,
        model: BaseChatModel | None,
        taxonomy: Taxonomy | None = None,
        playbooks: PlaybookLibrary | None = None,
        prompts: Prompts | None = None,
        trainer: Trainer | None = None,
    ) -> None:
        self.settings = settings
        self.history = history
        self.taxonomy = taxonomy or Taxonomy.load(settings.taxonomy_path)
        self.playbooks = playbooks or PlaybookLibrary.load(settings.playbooks_dir)
        self.model = model
        self.redactor = redactor(tuple(sorted(settings.redact_patterns.items())), settings.redact_names)
        self.preparer = Preparer(self.redactor, settings.max_text_chars, settings.redact_in_slack)
        self.drafter = (
            Drafter(
                settings, model, self.taxonomy, self.playbooks, prompts or Prompts.load(settings.prompts_dir)
            )
            if model is not None
            else None
        )
        self.trainer = trainer or Trainer(self.taxonomy, None, None)
        self.labels = LabelDecider(settings, self.taxonomy, self.trainer)
        self.playbook_choice = PlaybookChooser(self.playbooks, self.taxonomy, self.trainer)
        self.advisor = MitigationAdvisor(self.taxonomy, settings.hypothesis_coverage)
        self._mitigations: MitigationExtractor | None = None
        self.steps = StepWriter(self.taxonomy, self.playbooks, self.trainer, settings.step_close_margin)
        self.ttm = TimeToMitigate(settings.ttm_estimator, history, self.trainer, lambda: self.mitigations)

    @property
    def mitigations(self) -> MitigationExtractor:
        """Past incidents -> what fixed them (built on first use: it embeds the vocabulary)."""
        if self._mitigations is None:
            self._mitigations = MitigationExtractor(self.taxonomy)
        return self._mitigations

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        history: VectorStore | None = None,
        verdicts: VerdictSource | None = None,
        *,
        train_now: bool = False,
    ) -> Triager:
        """The triager of the configured history. Without a saved model the classifier is trained: in the
        foreground with `train_now` (a one-shot command needs it before its only draft), else in the background."""
        history = history or open_history(settings)
        taxonomy = Taxonomy.load(settings.taxonomy_path)
        trainer = trainer_for(settings, history, taxonomy, verdicts)
        if settings.learned_decision and not trainer.load():
            if train_now:
                trainer.train_now()
            else:
                trainer.request()  # in the background: the bot's first posts wait for it (Trainer.wait_first)
        return cls(settings, history, build_chat_model(settings), taxonomy, trainer=trainer)

    # ---- stages -------------------------------------------------------------------------------------------
    def retrieve(
        self,
        ticket: Ticket,
        text: str | None = None,
        before: datetime | None = None,
        query: np.ndarray | None = None,
        visible_at: datetime | None = None,
    ) -> Retrieved:
        s = self.settings
        return retrieve_all(
            self.history,
            text if text is not None else self.preparer.text(ticket),
            query=query,
            k=s.retrieval_k,
            exclude_ids=(ticket.id,),
            min_score=s.retrieval_min_score,
            near_duplicate=s.near_duplicate_score,
            min_with_fix=s.retrieval_min_with_fix,
            before=before,
            visible_at=visible_at,
        )

    def search(self, text: str, k: int, service: str | None = None) -> list[Hit]:
        """Past incidents like free text (`/triage similar`, `incibot history search`), searched as a ticket's
        are: cut, redacted and embedded by the same preparation."""
        prepared = self.preparer.prepare(Ticket(id="search", title="", text=text))
        return self.history.search(prepared.vector, k, service=service)

    def triage(
        self,
        ticket: Ticket,
        *,
        use_llm: bool = True,
        before: datetime | None = None,
        visible_at: datetime | None = None,
        history_required: bool = True,
        query: np.ndarray | None = None,
        prepared: Prepared | None = None,
        context: Context | None = None,
    ) -> TriageDraft:
        """Draft a triage. `before` limits history to incidents older than it, `visible_at` to incidents whose outcome
        was known before it (`bot.visibility`): evals replay history with both at the ticket's opening, no look-ahead.

        With `history_required=False` (the running bot) an unusable history store gives a draft without similar
        incidents and a warning instead of an error, so the ticket is still posted. `prepared` (or `query`, the
        embedding alone) is what the caller already has (storms and retrieval share it). `context` (recent changes,
        concurrent tickets) is evidence whose worth verdicts measure (bot/triage/evidence.py)."""
        t0 = time.perf_counter()
        text = self.preparer.text(ticket)
        red = prepared.redaction if prepared is not None else self.redactor.redact(text)
        query = prepared.vector if prepared is not None else query
        warnings: list[str] = [note] if (note := self.preparer.cut_note(ticket)) else []
        try:
            # Retrieval runs in process; it embeds the redacted text, as history is stored redacted.
            found = self.retrieve(ticket, red.text, before, query, visible_at)
        except HistoryError as e:
            if history_required:
                raise
            found = Retrieved([], query=query)
            warnings.append(f"History store unavailable, no similar incidents: {e}"[:300])
        similar = found.shown
        answer: Any = None
        if self.drafter is not None and use_llm:
            ask = red.text if self.settings.redact_llm_input else text
            facts = format_context(context)  # changes and alerts are stored redacted; metrics are numbers
            facts = self.redactor.redact(facts).text if self.settings.redact_llm_input else facts
            result = self.drafter.draft(ask, self._for_llm(similar), facts)
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
            evidence=evidence_features(context, self.taxonomy.evidence_alerts),
            context=context,
        )
        if context is not None:
            draft.context = context
        if usage.status == "rejected":
            warnings.append(f"LLM answer discarded: {usage.error}")
        draft.warnings, draft.redactions = warnings, red.counts
        draft.latency_s = round(time.perf_counter() - t0, 4)
        return draft

    def _for_llm(self, similar: list[SimilarIncident]) -> list[SimilarIncident]:
        """The similar incidents as the prompt shows them: redacted like the ticket when the LLM is external. History
        imported from files or a team's tools is stored as written, and its notes can hold a key or an address."""
        if not self.settings.redact_llm_input:
            return similar
        red = self.redactor.redact
        return [s.model_copy(update={"title": red(s.title).text, "resolution": red(s.resolution).text})
                for s in similar]  # fmt: skip

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
        evidence: list[str] | None = None,
        context: Context | None = None,
    ) -> TriageDraft:
        """The draft from its parts: labels, the privacy rule, the playbook, the first step and notes."""
        tax = self.taxonomy
        # the model and the ticket's features once: the label fields and the mitigation action read the same
        feats = self.labels.features(ticket, redacted or text, vector)
        labels = self.labels.decide(
            ticket,
            redacted or text,
            neighbours or similar,
            answer,
            usage,
            evidence=evidence or [],
            features=feats,
        )
        privacy_hit = tax.privacy_match(text)
        if privacy_hit:
            self.labels.privacy_override(labels)

        # What fixed each similar incident (and each neighbour): the sentence that says so and its action, never a
        # status line; then what may fix this one, which the playbook follows (bot/triage/hypotheses.py).
        similar = self.mitigations.annotate(similar)
        near = self.mitigations.annotate(neighbours) if neighbours else similar
        mitigation = self.advisor.advise(feats.model, feats.X, near, similar, redacted or text,
                                         evidence=evidence or [], book=self.trainer.evidence)  # fmt: skip
        choice = self.playbook_choice.choose(labels, answer, privacy_hit, similar, usage.model, mitigation)
        playbook = choice.playbook
        # The check that separates the two likeliest hypotheses when they are close, else the playbook's first check,
        # with the ticket's entities; the LLM's phrasing only once validated and measured (bot/triage/first_step.py).
        triage_step, step_source = self.steps.write(
            ticket,
            redacted or self.redactor.redact(text).text,
            labels,
            playbook,
            None if privacy_hit else getattr(answer, "triage_step", None),
            usage.model,
            getattr(mitigation, "hypotheses", None),  # the actions where there are two, else the root causes
            context,  # what changed and what moved: the step starts from it
            evidence,
        )

        notes = [
            f"Similar incident '{x.title}' (similarity {x.score:.2f}) was fixed by: {fix_text(x.fix, tax, 300)}"
            for x in similar
            if x.fix is not None
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
            evidence=evidence or [],
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
                reason=playbook_reason(choice, mitigation),
                steps=playbook.steps,
                adapted_notes=notes,
            ),
            rationale=rationale if usable_text(rationale) else "",
            kind="llm" if ok else "retrieval-only",
            llm=usage,
            mitigation=mitigation,
            ttm=self.ttm(
                ticket,
                labels["severity"].label if "severity" in labels else None,
                similar,
                neighbours or similar,
            ),
        )

    def record_verdict(
        self, draft: TriageDraft, final: dict[str, list[str]], fix_playbook: str | None = None
    ) -> None:
        """An engineer's labels (and the playbook their fix maps to): how often this model's own label and playbook
        were right, against the choice without it (its say next time)."""
        self.trainer.agreement.observe(draft, final, fix_playbook)
        self.trainer.evidence.observe(draft, final)

    def record_step_verdict(self, draft: TriageDraft, action: str) -> None:
        """Any verdict, a reject too: whether the draft was kept, by who wrote its first step (the LLM's say there)."""
        self.trainer.agreement.observe_step(draft, action)
