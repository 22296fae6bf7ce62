"""Which playbook a draft recommends: the one the learned top mitigation action maps to, where it is confident (not
abstained, not `other`); else the one whose scope fits the decided labels, plus the neighbours' fixes (mapped to
playbooks). The LLM's pick replaces it only once verdicts show that model right more often where the
two differ. A ticket that suggests personal-data exposure always gets the taxonomy's privacy playbook."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bot.models import LabelDecision, MitigationHypotheses, SimilarIncident
from bot.taxonomy import Taxonomy
from bot.triage.actions import ROOT_CAUSE
from bot.triage.decision import PLAYBOOK, Situation
from bot.triage.playbooks import Playbook, PlaybookLibrary
from bot.triage.resolutions import ResolutionMapper
from bot.triage.trainer import Trainer

OTHER = "other"  # the mitigation action that names no procedure
# Where the action is `other` or abstained: the top root cause's playbook (True) or the mix below (False). Chosen on
# cloud-labeled's validation split (`incibot eval --split validation`): agreement with the real fix's playbook 0.083
# with the root cause's, 0.167 with the mix (24 cases each); so the learned action replaces the mix only where it
# is confident.
CAUSE_FALLBACK = False
# Say of the neighbours' mapped fixes beside the labels' scope match: the ratio of how often each alone names an
# incident's own mapped fix on older history (0.22 vs 0.11 on cloud-labeled; `python -m evals.playbook_choice`).
FIXES_WEIGHT = 1.9


@dataclass(frozen=True)
class PlaybookChoice:
    playbook: Playbook
    source: str
    rule_choice: str | None = None  # without the LLM
    llm_choice: str | None = None  # the LLM's pick


class PlaybookChooser:
    def __init__(self, playbooks: PlaybookLibrary, taxonomy: Taxonomy, trainer: Trainer) -> None:
        self.playbooks, self.taxonomy, self.trainer = playbooks, taxonomy, trainer
        self._mapper: ResolutionMapper | None = None

    @property
    def mapper(self) -> ResolutionMapper:
        """Past resolutions -> the playbook that fits them (built on first use: it embeds the playbooks)."""
        if self._mapper is None:
            self._mapper = ResolutionMapper(self.playbooks)
        return self._mapper

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

    def choose(
        self,
        labels: dict[str, LabelDecision],
        answer: Any,
        privacy_hit: str | None,
        similar: list[SimilarIncident],
        model: str = "",
        mitigation: MitigationHypotheses | None = None,
    ) -> PlaybookChoice:
        lib, tax = self.playbooks, self.taxonomy
        if privacy_hit and tax.privacy and (p := lib.get(tax.privacy.playbook)):
            return PlaybookChoice(p, "rule")
        decided = {f: tax.to_default(f, d.label) for f, d in labels.items()}
        weights = {f: d.confidence for f, d in labels.items()}
        norm = sum(weights.values()) or 1.0
        if (followed := self.followed(mitigation, labels, decided, weights)) is not None:
            rule, source = followed, "classifier"
        else:
            fixes = self.fixes_vote(similar)
            # How well its scope fits the decided labels (0..1), plus FIXES_WEIGHT times the share of similar
            # incidents fixed its way: on older history the neighbours' fixes name the right playbook twice as often.
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

    def followed(
        self,
        mitigation: MitigationHypotheses | None,
        labels: dict[str, LabelDecision],
        decided: dict[str, str],
        weights: dict[str, float],
    ) -> Playbook | None:
        """The playbook of the learned top action (the best scope fit among those the taxonomy maps it to); where the
        action is `other`, abstained or maps to no playbook here, the top root cause's if CAUSE_FALLBACK. None: the
        mix decides (no vocabulary, no learned action yet, nothing fits), as before actions were learned."""
        if mitigation is None or mitigation.source != "classifier" or not mitigation.candidates:
            return None
        top = mitigation.candidates[0]
        pool: list[Playbook] = []
        if not mitigation.abstained and top != OTHER:
            pool = [p for i in self.taxonomy.playbooks_for(top) if (p := self.playbooks.get(i))]
        if not pool and CAUSE_FALLBACK and (rc := labels.get(ROOT_CAUSE)) is not None:
            cause = self.taxonomy.to_default(ROOT_CAUSE, rc.label)
            pool = [p for p in self.playbooks.by_id.values() if cause in p.applies_to.get(ROOT_CAUSE, [])]
        return max(pool, key=lambda p: p.match(decided, weights)) if pool else None


def reason(choice: PlaybookChoice, mitigation: MitigationHypotheses | None) -> str:
    """Why the playbook, said beside "What may fix it": a playbook that is not where the likeliest fix leads reads as
    a contradiction unless the post says why it was chosen instead."""
    top = mitigation.hypotheses[0] if mitigation is not None and mitigation.hypotheses else None
    name = (top.title or top.action) if top is not None else ""
    if choice.source == "rule":
        return "privacy rule: the ticket suggests personal-data exposure"
    if choice.source == "classifier":
        return f"follows the likeliest fix, {name}"
    if choice.source == "llm":
        return "the LLM's pick: verdicts show it right more often than the choice without it"
    how = (
        "the general playbook: none fits the labels or the similar incidents' fixes"
        if choice.source == "default"
        else "chosen by the labels and how similar incidents were fixed"
    )
    if top is None:
        return how
    if choice.playbook.id in top.playbooks:
        return f"{how}; it fits the likeliest fix, {name}"
    why = "no fix is likely enough to follow" if mitigation is not None and mitigation.abstained else ""
    return f"{how}, not the likeliest fix ({name}){': ' + why if why else ''}"
