"""`incibot history prelabel`: an LLM labels past incidents, through the triage's own prompt, schema, repair and
answer checks (`Drafter`, `check_answer`), its ticket text redacted as triage redacts it for that LLM. The labels go
to the record's `llm_labels` with the model's name, never to `labels` (the engineers'); what they weigh in training is
measured (`bot.triage.prelabels`).

The prompt shows no similar incidents: a near-duplicate (the same incident recorded in two tools) would hand the
model the engineer's label, and its agreement, measured on labelled incidents, would be inflated against what it
does on the unlabelled ones. Labelled incidents are asked first, up to `measure` of them: without that overlap no
pre-label weighs anything.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel
from pydantic import BaseModel, Field

from bot.config import Settings
from bot.models import HistoricalIncident, PreLabels
from bot.store.vectors import VectorStore, by_id
from bot.taxonomy import Taxonomy
from bot.triage.classifier import field_labels, valid_labels
from bot.triage.drafting import Drafter, Prompts
from bot.triage.folds import thinned
from bot.triage.llm import model_label
from bot.triage.playbooks import PlaybookLibrary
from bot.triage.prepare import Preparer
from bot.triage.redact import redactor
from bot.triage.validate import AnswerRejected, check_answer

ERRORS_KEPT = 20  # failures listed by id in the report; the rest are counted


class Outcome(StrEnum):
    LABELLED = "labelled"
    SKIPPED = "skipped"  # pre-labelled by this model already
    INVALID = "invalid"  # no schema-valid answer after the repair prompt
    REJECTED = "rejected"  # an answer the triage would drop (a leaked value, a link, a mention)
    UNAVAILABLE = "unavailable"  # the endpoint failed past its retries


class PreLabelReport(BaseModel):
    model: str
    counts: dict[Outcome, int] = Field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    failures: list[tuple[str, str]] = Field(default_factory=list)  # (incident id, why), the first ERRORS_KEPT
    stopped: str | None = None  # why the run stopped before its plan (the endpoint's circuit opened)


class PreLabeller:
    """One incident's labels from the configured LLM, as triage would ask for them."""

    def __init__(
        self,
        settings: Settings,
        model: BaseChatModel,
        taxonomy: Taxonomy,
        playbooks: PlaybookLibrary | None = None,
        prompts: Prompts | None = None,
    ) -> None:
        self.settings, self.taxonomy = settings, taxonomy
        playbooks = playbooks or PlaybookLibrary.load(settings.playbooks_dir)
        self.drafter = Drafter(
            settings, model, taxonomy, playbooks, prompts or Prompts.load(settings.prompts_dir)
        )
        # the triage's redaction (bot/triage/pipeline.py): the same patterns, names and text cut
        self.redactor = redactor(tuple(sorted(settings.redact_patterns.items())), settings.redact_names)
        self.preparer = Preparer(self.redactor, settings.max_text_chars, settings.redact_in_slack)
        self.model = model_label(model)

    def ask(self, inc: HistoricalIncident) -> tuple[Outcome, dict[str, list[str]] | str]:
        """The answer's labels per field (taxonomy-valid only), or the outcome and why there are none."""
        text = self.preparer.text(inc)
        red = self.redactor.redact(text)
        result = self.drafter.draft(red.text if self.settings.redact_llm_input else text, [])
        usage, answer = result.usage, result.answer
        if answer is None:
            bad = Outcome.INVALID if usage.status == "invalid" else Outcome.UNAVAILABLE
            return bad, usage.error or usage.status
        try:
            check_answer(answer, red, [], self.redactor)
        except AnswerRejected as e:
            return Outcome.REJECTED, str(e)
        labels: dict[str, list[str]] = {}
        for f in self.taxonomy.fields:
            said = getattr(answer, f, None)
            labs = valid_labels(self.taxonomy, f, said if isinstance(said, list) else [said] if said else [])
            if labs:
                labels[f] = labs
        return Outcome.LABELLED, labels


def plan(
    history: list[HistoricalIncident], taxonomy: Taxonomy, fields: list[str], model: str, n: int, measure: int
) -> tuple[list[int], int]:
    """Which incidents to ask, at most `n`: labelled ones (an engineer's label in one of `fields`) until `measure`
    of them carry this model's pre-labels, then ones missing a label in one of `fields`, each group spread evenly
    over time. Also how many in scope are done already (pre-labelled by this model)."""
    order = sorted(
        (i for i, inc in enumerate(history) if inc.body.strip()), key=lambda i: history[i].created_at
    )

    def done(i: int) -> bool:
        pre = history[i].llm_labels
        return pre is not None and pre.model == model

    def labelled(i: int) -> bool:
        return any(field_labels(taxonomy, f, history[i]) for f in fields)

    def missing(i: int) -> bool:
        return not all(field_labels(taxonomy, f, history[i]) for f in fields)

    have = sum(1 for i in order if done(i) and labelled(i))
    overlap = thinned([i for i in order if labelled(i) and not done(i)], min(n, max(0, measure - have)))
    chosen = set(overlap)
    rest = thinned([i for i in order if missing(i) and not done(i) and i not in chosen], n - len(overlap))
    return overlap + rest, sum(1 for i in order if done(i) and (labelled(i) or missing(i)))


def prelabel(
    store: VectorStore,
    labeller: PreLabeller,
    fields: list[str],
    n: int,
    measure: int,
    progress: Callable[[int, int], None] | None = None,
) -> PreLabelReport:
    """Ask, and write each answer as it comes (an interrupted run keeps what it wrote; the next resumes). A failure
    is counted and writes nothing; when the endpoint's circuit opens the run stops (run it again later)."""
    history, vectors = store.all()
    rows, skipped = plan(history, labeller.taxonomy, fields, labeller.model, n, measure)
    report = PreLabelReport(model=labeller.model)
    report.counts[Outcome.SKIPPED] = skipped
    for count, i in enumerate(rows, 1):
        inc = history[i]
        outcome, said = labeller.ask(inc)
        if isinstance(said, dict):
            # read again: an engineer may have labelled it meanwhile (`/triage label`), and those labels stay
            now = by_id(store, inc.id)
            if now is not None and now.body == inc.body:
                pre = PreLabels(model=labeller.model, labels=said)
                # the stored vector again: the text is unchanged, so nothing is embedded
                store.upsert(
                    [now.model_copy(update={"llm_labels": pre})], embeddings=np.asarray(vectors[i : i + 1])
                )
            else:  # removed or rewritten since it was read: what the model read is no longer the record
                outcome = Outcome.SKIPPED
        else:
            if len(report.failures) < ERRORS_KEPT:
                report.failures.append((inc.id, said))
            if said.startswith("circuit open"):
                report.stopped = said
        report.counts[outcome] += 1
        if report.stopped:
            break
        if progress:
            progress(count, len(rows))
    return report
