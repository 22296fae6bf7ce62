"""A TriageDraft as a terminal report (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.delivery.context import lines, metrics_lines, plain
from bot.models import FixEvidence, TriageDraft
from bot.taxonomy import Taxonomy
from bot.triage.evidence import describe as describe_evidence
from bot.triage.hypotheses import headline, hypothesis_text, set_text
from bot.triage.mitigation import fix_text, without_fix
from bot.triage.ttm import ttm_line


def _why_now(draft: TriageDraft) -> list[Text]:
    """Recent changes to the service and what else fires there (read from the bot's database)."""
    if draft.context is None:
        return []
    return [Text("\nWhy now", "bold underline"), *(Text(plain(line)) for line in lines(draft.context))]


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """The series as unicode blocks, scaled between its own min and max."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[round((v - low) / (high - low) * (len(SPARKS) - 1))] for v in values)


def _metrics(draft: TriageDraft) -> list[Text]:
    """What moved around the ticket (`prometheus_url`): a line and a sparkline per moved signal."""
    if draft.context is None or (t := draft.context.telemetry) is None:
        return []
    out = [Text("\nWhat the metrics show", "bold underline")]
    shown = metrics_lines(t, draft.context.changes if draft.context.service else None)
    for m, line in zip(t.moved, shown, strict=False):
        out.append(Text(f"- {line}", "red" if m.bad else ""))
        if m.trace:
            out.append(Text(f"  {sparkline([v for _, v in m.trace])}", "cyan"))
    out += [Text(f"- {line}", "dim") for line in shown[len(t.moved) :]]
    return out


def _hypotheses(draft: TriageDraft) -> list[Text]:
    """What may fix it: each action with its odds and evidence, or "no clear precedent" (none: no vocabulary)."""
    m = draft.mitigation
    if m is None:
        return []
    out = [Text("\nWhat may fix it", "bold underline") + Text(f"  ({headline(m)})")]
    out += [Text(f"- {hypothesis_text(h, _evidence)}") for h in m.hypotheses]
    return out


def _evidence(e: FixEvidence) -> str:
    return f"'{e.title}' ({e.score:.2f}{', ' + e.link if e.link else ''})"


def render(draft: TriageDraft, taxonomy: Taxonomy, confident_at: float, console: Console) -> None:
    kind = "LLM draft" if draft.kind == "llm" else "retrieval-only draft (LLM " + draft.llm.status + ")"
    head = Text.assemble(("Triage ", "bold"), (draft.ticket_id, "bold cyan"), f"  [{kind}]")
    if draft.privacy_exposure:
        head.append(
            f"\nPRIVACY: possible personal-data exposure ({draft.privacy_reason}). Top priority.", "bold red"
        )

    for w in draft.warnings:  # a cut text, a history or LLM outage: as on the Slack post
        head.append(f"\nwarning: {w}", "yellow")

    labels = Table(show_header=True, header_style="bold", box=None)
    for col in ("field", "label", "confidence", "from"):
        labels.add_column(col)
    for field, d in draft.labels.items():
        title = taxonomy.fields[field].categories[d.label].title or d.label
        conf = f"{d.confidence:.0%}" + ("" if d.confidence >= confident_at else " (low)")
        shown = f"{title} [{d.label}]"
        if d.abstained and (span := set_text(d, taxonomy.fields[field])):
            shown = (
                f"not sure: {span}"  # below the threshold: the conformal set (a range on an ordered scale)
            )
        why = f"; why now: {describe_evidence(d.evidence)}" if d.evidence else ""
        labels.add_row(field, shown, conf, d.source + why)

    similar = Table(show_header=True, header_style="bold", box=None)
    for col in ("score", "past incident", "how it was fixed"):
        similar.add_column(col, overflow="fold")
    for s in draft.similar:
        if s.fix is None:
            continue  # listed in one line below the fixes
        fix = fix_text(s.fix, taxonomy)  # the sentence that says what was done, never a status line
        title = s.title + (f"\n{s.link}" if s.link else "") + f"\n({s.id})"
        similar.add_row(f"{s.score:.2f}", title, fix)
    if not draft.similar:
        similar.add_row("-", "no similar incidents in history", "-")
    unfixed = without_fix(draft.similar, lambda s: f"'{s.title}' ({s.score:.2f}, {s.id})")

    steps = Text()
    for n, step in enumerate(draft.playbook.steps, 1):
        steps.append(f"{n}. {step.action}\n")
        if step.check:
            steps.append(f"   check: {step.check}\n", "dim")
    for note in draft.playbook.adapted_notes:
        steps.append(f"- {note}\n", "italic")

    console.print(
        Panel(
            Group(
                head,
                *_why_now(draft),
                *_metrics(draft),
                Text("\nClassification", "bold underline"),
                labels,
                *_hypotheses(draft),
                Text("\nSimilar past incidents", "bold underline"),
                similar
                if similar.row_count
                else Text(""),  # no header over no rows: all are in the line below
                Text(unfixed, "dim") if unfixed else Text(""),
                Text("\nFirst triage step", "bold underline") + Text(f"  (from {draft.triage_step_source})"),
                Text(draft.triage_step),
                Text(f"\n{ttm_line(draft.ttm)}", "dim") if draft.ttm else Text(""),
                Text(f"\nPlaybook: {draft.playbook.title}", "bold underline")
                + Text(f"  [{draft.playbook.id}, from {draft.playbook.source}]"),
                Text(draft.playbook.reason, "dim") if draft.playbook.reason else Text(""),
                steps,
                Text(
                    f"model {draft.llm.model}, {draft.llm.prompt_tokens}+{draft.llm.completion_tokens} tokens, "
                    f"LLM {draft.llm.latency_s:.1f}s, total {draft.latency_s:.1f}s",
                    "dim",
                ),
            ),
            expand=True,
        )
    )
