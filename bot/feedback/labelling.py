"""Which past incidents to ask engineers to label next (`/triage label`), as `incibot history label` picks them:
active learning over the whole history (`bot.triage.active.to_label`), each with the classifier's guesses."""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import HistoricalIncident, LabelBatch, LabelCandidate, LabelGuess
from bot.store.vectors import VectorStore
from bot.taxonomy import Taxonomy

EXCERPT_CHARS = 280  # a glance at the triage-time text: the batch lists up to 20 of them in one message
GUESSES = 3  # per field, likeliest first (the message shows the first)


def label_batch(history: VectorStore, taxonomy: Taxonomy, n: int) -> LabelBatch:
    """The `n` unlabelled incidents that teach the classifier most, for every field of the taxonomy. Reads the
    whole history and fits the classifiers (seconds on a large one): never on Slack's 3-second path. Raises
    HistoryError when the history store cannot be read."""
    # scikit-learn and k-means: imported only when a batch is asked for
    from bot.triage.active import to_label, unlabelled

    incidents, vectors = history.all()
    fields = list(taxonomy.fields)
    pool = unlabelled(incidents, taxonomy, fields)
    if not pool:  # empty, or every incident with text labelled: nothing to fit
        return LabelBatch(history_size=len(incidents))
    rows, probs = to_label(incidents, vectors, taxonomy, fields, n)
    candidates = [
        candidate(incidents[r], {g.field: g.ranked for g in probs.guess(r, top=GUESSES)}) for r in rows
    ]
    return LabelBatch(history_size=len(incidents), candidates=candidates, no_guess=dict(probs.missing))


def candidate(
    inc: HistoricalIncident, guesses: dict[str, Sequence[tuple[str, float]]] | None = None
) -> LabelCandidate:
    """A past incident as the engineer labels it: only what was known at triage time, never its resolution."""
    text = " ".join(inc.text.split())
    excerpt = text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rstrip() + "…"
    return LabelCandidate(
        id=inc.id,
        title=inc.title,
        service=inc.service,
        created_at=inc.created_at,
        excerpt=excerpt,
        labels={f: list(v) for f, v in inc.labels.items() if v},
        guesses={
            f: [LabelGuess(label=label, probability=min(max(p, 0.0), 1.0)) for label, p in ranked]
            for f, ranked in (guesses or {}).items()
        },
    )
