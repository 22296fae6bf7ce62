"""What may fix a ticket: the mitigation hypotheses of a draft, each with a calibrated probability and its evidence.

The learned action decision (`bot.triage.actions`) scores every action from the ticket's features, its root-cause
probabilities and the neighbours' mapped fixes; the calibrator turns the top score into how often it is right, and
below the action's threshold the draft says "no clear precedent". How many to show: the conformal set at
`hypothesis_coverage` (as many as it takes to hold the right action that often), at most three. Until an action
model is trained (too few incidents with a known fix, a vocabulary edit) the history's base rate of fixes, with the
neighbours' fixes on top (`with_prior`), is listed as it is, uncalibrated, and never decides the playbook.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from bot.models import (
    FixEvidence,
    LabelDecision,
    MitigationHypotheses,
    MitigationHypothesis,
    SimilarIncident,
)
from bot.taxonomy import MITIGATION, LabelField, Taxonomy
from bot.triage.actions import ROOT_CAUSE, ActionModel
from bot.triage.evidence import EvidenceBook, describe, move
from bot.triage.learned import LearnedModel
from bot.triage.terms import ActionTerms

SHOWN = 3
EVIDENCE = 3  # similar incidents listed per hypothesis
TERMS = 3  # words of the ticket listed per hypothesis
NO_PRECEDENT = "no clear precedent"


def fix_votes(neighbours: list[SimilarIncident]) -> dict[str, float]:
    """Share of similarity mass per action among the neighbours whose fix is known (as a field's vote)."""
    votes: dict[str, float] = defaultdict(float)
    for s in neighbours:
        if s.fix is not None:
            votes[s.fix.action] += max(s.score, 0.0) ** 2
    total = sum(votes.values())
    return {a: v / total for a, v in sorted(votes.items(), key=lambda kv: -kv[1])} if total > 0 else {}


class MitigationAdvisor:
    def __init__(self, taxonomy: Taxonomy, coverage: float) -> None:
        self.taxonomy, self.coverage = taxonomy, coverage
        self.terms = ActionTerms(taxonomy)
        self._words: tuple[int, np.ndarray] | None = None  # (id of the model, its word features' names)

    def advise(
        self,
        learned: LearnedModel | None,
        X,  # type: ignore[no-untyped-def]
        neighbours: list[SimilarIncident],
        similar: list[SimilarIncident],
        text: str = "",
        evidence: list[str] | None = None,
        book: EvidenceBook | None = None,
    ) -> MitigationHypotheses | None:
        """The hypotheses from the ticket's features `X` (None: not featurised) and its neighbours, their `fix` set;
        `text` is the ticket's (redacted) text, which its shown words must assert. The why-now `evidence` (a deploy
        minutes before, the KV cache filling) moves each action's odds by its prior and verdicts in `book`, as it
        moves the labels' (bot/triage/evidence.py); the conformal set then no longer holds its coverage, so the
        likeliest are shown. None when the taxonomy has no mitigation vocabulary."""
        if self.taxonomy.mitigation is None:
            return None
        votes = fix_votes(neighbours)
        seen = {s.id: s for s in [*neighbours, *similar]}
        am = learned.actions if learned is not None else None
        if am is None or X is None or learned is None:
            why = learned.actions_fallback if learned is not None else "no model trained yet"
            base = learned.action_base if learned is not None else {}
            probs = with_prior(votes, sum(1 for s in neighbours if s.fix is not None), base, len(neighbours))
            before = dict(probs)
            probs, named = self._moved(probs, evidence, book)
            ranked = sorted(probs, key=lambda a: -probs[a])[:SHOWN]
            hyps = [self._hypothesis(a, probs[a], seen, [], named.get(a, [])) for a in ranked]
            if not base:  # the neighbours alone: a share of a handful is a count, not odds
                hyps = [h.model_copy(update=_counted(h.action, neighbours)) for h in hyps]
            how = "the similar incidents' fixes" if votes else ""
            how = " and ".join(x for x in (how, "how past incidents here were fixed" if base else "") if x)
            note = f"{NO_PRECEDENT}: {how}, not calibrated ({why})" if how else NO_PRECEDENT
            source = "vote" if votes else ("prior" if base else "none")
            return MitigationHypotheses(hypotheses=hyps, abstained=True, source=source,
                                        candidates=ranked, votes=votes, note=note, calibrated=before,
                                        confidence=round(probs[ranked[0]], 4) if ranked else 0.0)  # fmt: skip
        rc = (
            learned.proba(ROOT_CAUSE, X)
            if am.root_cause is not None and ROOT_CAUSE in learned.fields
            else None
        )
        Xa = am.features(X, rc)
        d = am.decider
        scores = d.scores_many([(d.clf.proba(Xa)[0], votes)])[0]
        probs = _probabilities(scores, d.calibrated(np.asarray(list(scores.values()))))
        before = dict(probs)
        probs, named = self._moved(probs, evidence, book)
        ranked = sorted(probs, key=lambda a: (-probs[a], -scores[a]))
        chosen = d.prediction_set(scores, self.coverage)
        abstained = probs[ranked[0]] < d.threshold
        # the set was drawn without the evidence: with it, the likeliest (as an abstaining draft lists them)
        shown, from_set = shown_actions(chosen, ranked, abstained) if not named else (ranked[:SHOWN], False)
        hyps = [
            self._hypothesis(a, probs[a], seen, self._terms(learned, am, Xa, a, text), named.get(a, []))
            for a in shown
        ]
        return MitigationHypotheses(
            hypotheses=hyps,
            abstained=abstained,
            source="classifier",
            coverage=self.coverage if d.conformal is not None else None,
            conformal_set=chosen,
            from_set=from_set,
            candidates=ranked[:SHOWN],
            confidence=round(probs[ranked[0]], 4),
            votes=votes,
            note=NO_PRECEDENT if abstained else "",
            calibrated={a: round(p, 4) for a, p in before.items()},
        )

    @staticmethod
    def _moved(
        probs: dict[str, float], evidence: list[str] | None, book: EvidenceBook | None
    ) -> tuple[dict[str, float], dict[str, list[str]]]:
        """The actions' probabilities with the why-now evidence, and the features named per action."""
        out = move(probs, evidence or [], book, MITIGATION) if book is not None else None
        return out if out is not None else (probs, {})

    def _hypothesis(
        self,
        action: str,
        p: float,
        seen: dict[str, SimilarIncident],
        terms: list[str],
        evidence: list[str] | None = None,
    ) -> MitigationHypothesis:
        tax = self.taxonomy
        cat = tax.mitigation.categories.get(action) if tax.mitigation else None
        fixed = sorted(
            (s for s in seen.values() if s.fix is not None and s.fix.action == action), key=lambda s: -s.score
        )
        return MitigationHypothesis(
            action=action,
            title=(cat.title if cat else "") or action,
            probability=round(min(max(p, 0.0), 1.0), 3),
            similar=[
                FixEvidence(
                    id=s.id,
                    title=s.title,
                    score=round(s.score, 3),
                    link=s.link,
                    sentence=s.fix.sentence if s.fix else "",
                )
                for s in fixed[:EVIDENCE]
            ],
            ticket_terms=terms,
            playbooks=tax.playbooks_for(action),
            evidence=evidence or [],
        )

    def _terms(self, learned: LearnedModel, am: ActionModel, Xa, action: str, text: str) -> list[str]:  # type: ignore[no-untyped-def]
        """The ticket's words that raise the action's score most in its linear classifier (weight x TF-IDF), of
        those that carry the action's meaning and that the ticket asserts (bot/triage/terms.py)."""
        clf = am.decider.clf
        if action not in clf.classes:
            return []
        if self._words is None or self._words[0] != id(learned):
            self._words = (id(learned), learned.featurizer.word.get_feature_names_out())
        names = self._words[1]
        ests = clf.model.estimators_  # type: ignore[attr-defined]
        j = clf.classes.index(action)
        # two classes: one estimator, for the second class (the first's weights are its negation)
        coef = ests[j].coef_[0] if len(ests) > 1 else ests[0].coef_[0] * (1 if j == 1 else -1)
        row = Xa[0, : len(names)].tocoo()
        contrib = row.data * coef[row.col]
        best = [
            (c, names[j]) for c, j in sorted(zip(contrib, row.col, strict=True), key=lambda t: -t[0]) if c > 0
        ]
        # service/sender tokens are not words; a model name, a clock or "for the" changes no one's mind
        return [
            str(w) for _, w in best if not w.startswith("__") and self.terms.is_evidence(action, w, text)
        ][:TERMS]


def _counted(action: str, neighbours: list[SimilarIncident]) -> dict[str, int]:
    fixed = sum(1 for s in neighbours if s.fix is not None and s.fix.action == action)
    return {"fixed_count": fixed, "of_count": len(neighbours)}


def shown_actions(chosen: list[str], ranked: list[str], abstained: bool) -> tuple[list[str], bool]:
    """Which actions a draft lists, and whether they are the conformal set's. The set says how many when it holds
    two or more (or one that is confident) and at most half the actions known (`ranked`): "the 85% set, 7 more in
    the set" of ten narrows nothing. A single action at odds below the coverage beside "the 85% set" reads as a
    contradiction, and an empty set says nothing: then the likeliest three, each with its odds, when the draft
    abstains (the one when it is confident)."""
    narrows = 2 * len(chosen) <= len(ranked)
    if narrows and (len(chosen) >= 2 or (len(chosen) == 1 and not abstained)):
        return sorted(chosen, key=ranked.index)[:SHOWN], True
    return ranked[: SHOWN if abstained else 1], False


def with_prior(votes: dict[str, float], n_fixed: int, base: dict[str, float], k: int) -> dict[str, float]:
    """Without an action model: the neighbours' fixes (`n_fixed` of them known, shares `votes`) on top of the
    history's base rate, which counts as much as a whole neighbourhood (`k`): one neighbour's fix does not outrank
    what usually fixed incidents here, five agreeing ones do."""
    if not base:
        return dict(votes)
    w = max(k, 1)
    out = {a: (w * base.get(a, 0.0) + n_fixed * votes.get(a, 0.0)) / (w + n_fixed) for a in {*base, *votes}}
    return {a: round(p, 4) for a, p in sorted(out.items(), key=lambda kv: -kv[1])}


def _probabilities(scores: dict[str, float], calibrated: np.ndarray) -> dict[str, float]:
    """Calibrated probability per action. The calibrator maps the top score to how often it is right; applied to
    the others it keeps their order, and they are scaled down where together they would pass 1 - P(top)."""
    p = {a: float(min(max(x, 0.0), 1.0)) for a, x in zip(scores, calibrated, strict=True)}
    top = max(p, key=lambda a: (p[a], scores[a]))
    rest = sum(v for a, v in p.items() if a != top)
    if rest > 1 - p[top] and rest > 0:
        scale = (1 - p[top]) / rest
        p = {a: (v if a == top else v * scale) for a, v in p.items()}
    return p


def headline(m: MitigationHypotheses) -> str:
    """The hypotheses' heading line: how they were chosen, or "no clear precedent"."""
    if not m.hypotheses:
        return m.note or NO_PRECEDENT
    if m.source != "classifier":
        return m.note
    more = len(m.conformal_set) - len(m.hypotheses) if m.from_set else 0
    cov = f"the {m.coverage:.0%} set" if m.coverage is not None and m.from_set else "the likeliest"
    extra = f", {more} more in the set" if more > 0 else ""
    return (NO_PRECEDENT + "; " if m.abstained else "") + f"{cov}{extra}"


def hypothesis_text(h: MitigationHypothesis, link: Callable[[FixEvidence], str] | None = None) -> str:
    """ "Rollback 62%: fixed 'X' (0.81), 'Y'; ticket: "rollout", "500"": the action, its odds and evidence."""
    show = link or (lambda e: f"'{e.title}' ({e.score:.2f})")
    fixed = ", ".join(show(e) for e in h.similar)
    if h.fixed_count is not None and h.of_count:
        n = h.fixed_count
        were = "was" if n == 1 else "were"
        parts = [f"{h.title or h.action}: {n} of {h.of_count} similar incidents {were} fixed this way"
                 + (f" ({fixed})" if fixed else "")]  # fmt: skip
    else:
        parts = [f"{h.title or h.action} {h.probability:.0%}"]
        if fixed:
            parts.append("fixed this way: " + fixed)
    if h.ticket_terms:
        parts.append("ticket says: " + ", ".join(f'"{t}"' for t in h.ticket_terms))
    if h.evidence:
        parts.append("why now: " + describe(h.evidence))
    return "; ".join(parts)


def set_text(d: LabelDecision, fld: LabelField) -> str:
    """An abstaining field's conformal set: "SEV2 major - SEV3 minor (85% set)" ("" when there is none, or when it
    holds one label only: next to a field that is "not sure" of that very label it would read as a contradiction, so
    the candidates are asked instead)."""
    if len(d.label_set) < 2 or d.set_coverage is None:
        return ""
    names = [fld.categories[x].title or x if x in fld.categories else x for x in d.label_set]
    shown = f"{names[0]} - {names[-1]}" if fld.ordinal and len(names) > 1 else " or ".join(names)
    return f"{shown} ({d.set_coverage:.0%} set)"
