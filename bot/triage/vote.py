"""Evidence beyond the LLM: similarity-weighted votes of past incidents, combined with the LLM's label."""

from __future__ import annotations

from collections import defaultdict

from bot.models import LabelDecision, SimilarIncident
from bot.taxonomy import Taxonomy

# Confidence given to an LLM label that no retrieved incident can confirm or contradict.
LLM_ONLY_CONFIDENCE = 0.35


def knn_votes(similar: list[SimilarIncident], field: str, taxonomy: Taxonomy) -> dict[str, float]:
    """Share of similarity mass per label among neighbours labelled for this field (sums to 1, or empty)."""
    votes: dict[str, float] = defaultdict(float)
    for s in similar:
        labels = [lab for lab in s.labels.get(field, []) if taxonomy.is_valid(field, lab)]
        for lab in labels:
            # A multi-label neighbour spreads its weight; squaring favours the closest incidents.
            votes[lab] += max(s.score, 0.0) ** 2 / len(labels)
    total = sum(votes.values())
    return {k: v / total for k, v in sorted(votes.items(), key=lambda kv: -kv[1])} if total > 0 else {}


def valid_labels(field: str, taxonomy: Taxonomy, label: str | list[str] | None) -> list[str]:
    """An LLM's label(s) for a field as a list, duplicates and anything outside the taxonomy dropped."""
    raw = [label] if isinstance(label, str) else list(label or [])
    return [lab for lab in dict.fromkeys(raw) if taxonomy.is_valid(field, lab)]


MULTI_LABEL_SHARE = 0.3  # in a multi-label field, every label with at least this share of the vote is kept


def decide(
    field: str,
    taxonomy: Taxonomy,
    llm_label: str | list[str] | None,
    votes: dict[str, float],
    llm_weight: float,
) -> LabelDecision:
    """Labels for a field: the LLM's vote and the neighbours' votes, mixed by `llm_weight`."""
    llm_labels = valid_labels(field, taxonomy, llm_label)
    knn_label = next(iter(votes), None)
    if llm_labels and votes:
        mixed = {lab: (1 - llm_weight) * share for lab, share in votes.items()}
        for lab in llm_labels:
            mixed[lab] = mixed.get(lab, 0.0) + llm_weight / len(llm_labels)
        label = max(mixed, key=lambda k: mixed[k])
        in_llm = label in llm_labels
        source = "llm+retrieval" if in_llm and label == knn_label else ("llm" if in_llm else "retrieval")
        conf = mixed[label]
    elif llm_labels:
        mixed = {lab: 1 / len(llm_labels) for lab in llm_labels}
        label, source, conf = llm_labels[0], "llm", LLM_ONLY_CONFIDENCE
    elif votes:
        mixed = dict(votes)
        label, source, conf = knn_label, "retrieval", votes[knn_label]  # type: ignore[index]
    else:
        mixed = {}
        label, source, conf = default_label(field, taxonomy), "default", 0.0
    labels = [label]
    if taxonomy.fields[field].multi_label:
        labels += [lab for lab, share in sorted(mixed.items(), key=lambda kv: -kv[1])
                   if lab != label and share >= MULTI_LABEL_SHARE]  # fmt: skip
    return LabelDecision(
        field=field,
        label=label,  # type: ignore[arg-type]
        labels=labels,  # type: ignore[arg-type]
        confidence=round(min(max(conf, 0.0), 1.0), 3),
        source=source,  # type: ignore[arg-type]
        llm_label=llm_label if llm_labels else None,
        retrieval_label=knn_label,
        retrieval_votes={k: round(v, 3) for k, v in votes.items()},
    )


def default_label(field: str, taxonomy: Taxonomy) -> str:
    """With no evidence at all: an explicit 'unknown'/'other' category if the taxonomy has one, else the
    least severe level of an ordinal field, else the first category."""
    f = taxonomy.fields[field]
    for candidate in ("unknown", "other", "OTHERS", "UNKNOWN"):
        if candidate in f.categories:
            return candidate
    return f.ids[-1] if f.ordinal else f.ids[0]
