"""Per taxonomy field, the label a draft shows: the learned decision where a model is trained for the field, else
the vote of the neighbours and the LLM; then the taxonomy's privacy rule, which overrides both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.config import Settings
from bot.models import LabelDecision, LLMUsage, SimilarIncident, Ticket
from bot.store.embeddings import get_embedder
from bot.taxonomy import Taxonomy
from bot.triage.conformal import ordinal_range
from bot.triage.evidence import apply as apply_evidence
from bot.triage.learned import LearnedModel
from bot.triage.trainer import Trainer
from bot.triage.vote import decide, knn_votes, valid_labels


@dataclass(frozen=True)
class TicketFeatures:
    """The learned model a draft is decided with and the ticket's features under it: read and computed once per
    ticket, for the label fields and the mitigation action alike."""

    model: LearnedModel | None
    X: Any = None  # None: no model, or nothing it decides


class LabelDecider:
    def __init__(self, settings: Settings, taxonomy: Taxonomy, trainer: Trainer) -> None:
        self.settings, self.taxonomy, self.trainer = settings, taxonomy, trainer

    def features(self, ticket: Ticket, text: str, vector: np.ndarray | None = None) -> TicketFeatures:
        """The current model and the ticket's features under it (`vector`: the retrieval's embedding of the
        redacted text; embedded here only if the history was down)."""
        learned = self.trainer.current if self.settings.learned_decision else None
        if learned is None or (not learned.fields and learned.actions is None):
            return TicketFeatures(learned)
        vec = vector if vector is not None else get_embedder().embed([text])[0]
        return TicketFeatures(learned, learned.features(text, ticket.service, ticket.source, vec))

    def decide(
        self,
        ticket: Ticket,
        text: str,
        neighbours: list[SimilarIncident],
        answer: Any,
        usage: LLMUsage,
        vector: np.ndarray | None = None,
        *,
        evidence: list[str] | None = None,
        features: TicketFeatures | None = None,
    ) -> dict[str, LabelDecision]:
        """Per field: the learned decision where a model is trained for it, else the vote (and why); `evidence` (the
        ticket's why-now features) moves a learned decision by its measured odds ratios (bot/triage/evidence.py);
        `features`: the model and the ticket's features when the caller has them (else read here, from `vector`)."""
        tax, s = self.taxonomy, self.settings
        f = features or self.features(ticket, text, vector)
        learned, X = f.model, f.X
        llm_ok = answer is not None and usage.status in ("ok", "repaired")
        labels: dict[str, LabelDecision] = {}
        for field in tax.fields:
            llm_label = getattr(answer, field, None) if answer is not None else None
            votes = knn_votes(neighbours, field, tax)
            if learned is not None and field in learned.fields:
                llm_labels = valid_labels(field, tax, llm_label) if llm_ok else []
                witness = self.trainer.agreement.witness(usage.model, field) if llm_labels else None
                proba = learned.proba(field, X)
                decider = learned.fields[field]
                d = decider.decide(proba, votes, llm_labels, witness, s.hypothesis_coverage)
                d = apply_evidence(d, evidence or [], self.trainer.evidence, decider.threshold)
                fld = tax.fields[field]
                if fld.ordinal and d.label_set:  # an ordinal field's set as a range of levels
                    d = d.model_copy(update={"label_set": ordinal_range(d.label_set, fld.ids)})
                labels[field] = d
            else:
                d = decide(field, tax, llm_label, votes, s.llm_weight)
                why = learned.fallback.get(field) if learned is not None else self.trainer.status
                labels[field] = d.model_copy(update={"fallback": why if s.learned_decision else None})
        return labels

    def privacy_override(self, labels: dict[str, LabelDecision]) -> None:
        """A ticket that suggests personal-data exposure gets the taxonomy's privacy labels, never abstaining."""
        tax = self.taxonomy
        if tax.privacy is None:
            return
        for field, forced in (("symptom", tax.privacy.symptom), ("severity", tax.privacy.severity)):
            if forced and field in labels:
                d = labels[field]
                labels[field] = d.model_copy(  # privacy never abstains: stop the spread first
                    update={"label": forced, "labels": [forced, *[x for x in d.labels if x != forced]],
                            "confidence": 1.0, "source": "rule", "abstained": False, "label_set": [],
                            "set_coverage": None}
                )  # fmt: skip
