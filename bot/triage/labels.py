"""Per taxonomy field, the label a draft shows: the learned decision where a model is trained for the field, else
the vote of the neighbours and the LLM; then the taxonomy's privacy rule, which overrides both."""

from __future__ import annotations

from typing import Any

import numpy as np

from bot.config import Settings
from bot.models import LabelDecision, LLMUsage, SimilarIncident, Ticket
from bot.store.embeddings import get_embedder
from bot.taxonomy import Taxonomy
from bot.triage.conformal import ordinal_range
from bot.triage.decision import FieldDecider
from bot.triage.evidence import apply as apply_evidence
from bot.triage.trainer import Trainer
from bot.triage.vote import decide, knn_votes, valid_labels


class LabelDecider:
    def __init__(self, settings: Settings, taxonomy: Taxonomy, trainer: Trainer) -> None:
        self.settings, self.taxonomy, self.trainer = settings, taxonomy, trainer

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
    ) -> dict[str, LabelDecision]:
        """Per field: the learned decision where a model is trained for it, else the vote (and why); `evidence` (the
        ticket's why-now features) moves a learned decision by its measured odds ratios (bot/triage/evidence.py)."""
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
                decider = learned.fields[field]
                d = decider.decide(proba, votes, llm_labels, witness)
                d = apply_evidence(d, evidence or [], self.trainer.evidence, decider.threshold)
                labels[field] = self._with_set(d, decider, proba, votes)
            else:
                d = decide(field, tax, llm_label, votes, s.llm_weight)
                why = learned.fallback.get(field) if learned is not None else self.trainer.status
                labels[field] = d.model_copy(update={"fallback": why if s.learned_decision else None})
        return labels

    def _with_set(
        self, d: LabelDecision, decider: FieldDecider, proba: np.ndarray, votes: dict[str, float]
    ) -> LabelDecision:
        """The decision with its conformal set at `hypothesis_coverage` (an ordinal field's as a range of levels)."""
        cov = self.settings.hypothesis_coverage
        chosen = decider.prediction_set(decider.scores_many([(proba, votes)])[0], cov)
        fld = self.taxonomy.fields[d.field]
        shown = ordinal_range(chosen, fld.ids) if fld.ordinal else chosen
        return d.model_copy(update={"label_set": shown, "set_coverage": cov}) if shown else d

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
