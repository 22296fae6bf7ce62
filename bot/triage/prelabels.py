"""What an LLM's pre-labels of the history (`incibot history prelabel`) are worth in training, measured.

Per model and field, on the incidents that carry both an engineer's label and the model's pre-label (the overlap):
how often the model named a label the engineer gave (`agree` of `n`), against how often a labeller that names labels
at the model's own rates, blind to the text, would (`chance`: Cohen's chance agreement, the sum over labels of the
model's share times the engineers' share; a model that always names the majority label gets exactly its hit rate).
The observed rate is shrunk towards chance by AGREEMENT_PRIOR pseudo-observations through the same odds ratio that
gives the LLM its say in a draft (`LLMAgreement.odds_ratio`), and the weight is the share of the way from chance to
perfect agreement that rate covers (Cohen's kappa on the shrunk rate):

    ratio = odds_ratio(agree, n * chance, n)       r = chance with its odds times ratio = (agree + 10 chance) / (n + 10)
    weight = max(0, (r - chance) / (1 - chance))  = max(0, n / (n + 10) * kappa)

Why kappa: a pre-label that is the engineer's label with probability `weight` and otherwise a text-blind draw at the
labels' base rates carries that share of signal; the rest teaches only the base rates. No overlap: weight 0 (an
unmeasured model teaches nothing); agreement no better than chance: 0; 40 agreeing overlaps of 40 at chance 0.3:
0.8; an engineer's label weighs 1. Multi-label fields count each label the model named.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from bot.triage.classifier import PreLabelRows, field_labels, valid_labels
from bot.triage.decision import LLMAgreement, shifted


class PreLabelAgreement(BaseModel):
    """One model's measured agreement with the engineers on one field, and the training weight it earns."""

    model: str
    field: str
    n: int = 0  # labels the model named on incidents the engineers labelled too
    agree: int = 0  # of them, ones the engineer gave
    chance: float = 0.0  # what a text-blind labeller at the same rates would agree
    weight: float = 0.0
    used: int = 0  # pre-labels of incidents without an engineer label for the field: rows it adds to training

    def describe(self) -> str:
        if not self.n:
            return f"{self.used} LLM pre-labels ({self.model}) unused: no overlap with engineers' labels"
        return (
            f"{self.used} LLM pre-labels ({self.model}) at weight {self.weight:.2f} "
            f"(agreed {self.agree}/{self.n}, chance {self.chance:.2f})"
        )


def prelabel_weight(agree: int, n: int, chance: float) -> float:
    """The formula of the module docstring."""
    if not n or chance >= 0.99:  # unmeasured, or the engineers' labels leave no room above chance to measure
        return 0.0
    q = max(chance, 0.01)  # odds_ratio bounds the prediction so; the kappa uses the same
    r = shifted(q, LLMAgreement.odds_ratio(agree, n * q, n))
    return max(0.0, (r - q) / (1 - q))


def measure(
    history: list[HistoricalIncident], taxonomy: Taxonomy, field: str
) -> dict[str, PreLabelAgreement]:
    """Per model: its agreement with the engineers on `field` and the weight that earns (module docstring)."""
    pairs: dict[str, list[tuple[list[str], list[str]]]] = {}
    used: Counter[str] = Counter()
    for inc in history:
        if inc.llm_labels is None:
            continue
        llm = valid_labels(taxonomy, field, inc.llm_labels.labels.get(field, []))
        if not llm:
            continue
        gold = field_labels(taxonomy, field, inc)
        if gold:
            pairs.setdefault(inc.llm_labels.model, []).append((llm, gold))
        else:
            used[inc.llm_labels.model] += 1
    multi = taxonomy.fields[field].multi_label
    out = {}
    for model in {*pairs, *used}:
        rows = pairs.get(model, [])
        # single-label: the model's label against the engineer's (first) one; multi: each label it named
        named = [lab for llm, _ in rows for lab in (llm if multi else llm[:1])]
        agree = sum(
            lab in (gold if multi else gold[:1]) for llm, gold in rows for lab in (llm if multi else llm[:1])
        )
        eng = Counter(lab for _, gold in rows for lab in (gold if multi else gold[:1]))
        share = Counter(named)
        chance = sum(share[c] / len(named) * eng[c] / len(rows) for c in share) if rows else 0.0
        out[model] = PreLabelAgreement(
            model=model, field=field, n=len(named), agree=agree, chance=round(chance, 4),
            weight=round(prelabel_weight(agree, len(named), chance), 4), used=used[model],
        )  # fmt: skip
    return out


def prelabel_rows(
    order: list[HistoricalIncident], taxonomy: Taxonomy, field: str
) -> tuple[PreLabelRows, list[PreLabelAgreement]]:
    """The rows `field` gains from the history's pre-labels, and each model's agreement (for the model's status)."""
    book = measure(order, taxonomy, field)
    labels: list[list[str]] = []
    weights: list[float] = []
    for inc in order:
        pre = inc.llm_labels
        labs = valid_labels(taxonomy, field, pre.labels.get(field, [])) if pre is not None else []
        w = book[pre.model].weight if pre is not None and labs else 0.0
        if w <= 0 or field_labels(taxonomy, field, inc):
            labs, w = [], 0.0  # an engineer's label is the row's; a pre-label never replaces it
        labels.append(labs)
        weights.append(w)
    return PreLabelRows(labels, weights), sorted(book.values(), key=lambda a: a.model)
