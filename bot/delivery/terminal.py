"""A TriageDraft as a terminal report (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.models import TriageDraft
from bot.taxonomy import Taxonomy


def render(draft: TriageDraft, taxonomy: Taxonomy, confident_at: float, console: Console) -> None:
    kind = "LLM draft" if draft.kind == "llm" else "retrieval-only draft (LLM " + draft.llm.status + ")"
    head = Text.assemble(("Triage ", "bold"), (draft.ticket_id, "bold cyan"), f"  [{kind}]")
    if draft.privacy_exposure:
        head.append(
            f"\nPRIVACY: possible personal-data exposure ({draft.privacy_reason}). Top priority.", "bold red"
        )

    labels = Table(show_header=True, header_style="bold", box=None)
    for col in ("field", "label", "confidence", "from"):
        labels.add_column(col)
    for field, d in draft.labels.items():
        title = taxonomy.fields[field].categories[d.label].title or d.label
        conf = f"{d.confidence:.0%}" + ("" if d.confidence >= confident_at else " (low)")
        labels.add_row(field, f"{title} [{d.label}]", conf, d.source)

    similar = Table(show_header=True, header_style="bold", box=None)
    for col in ("score", "past incident", "how it was fixed"):
        similar.add_column(col, overflow="fold")
    for s in draft.similar:
        fix = " ".join(s.resolution.split())[:220] or "-"
        title = s.title + (f"\n{s.link}" if s.link else "") + f"\n({s.id})"
        similar.add_row(f"{s.score:.2f}", title, fix)
    if not draft.similar:
        similar.add_row("-", "no similar incidents in history", "-")

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
                Text("\nClassification", "bold underline"),
                labels,
                Text("\nSimilar past incidents", "bold underline"),
                similar,
                Text("\nFirst triage step", "bold underline") + Text(f"  (from {draft.triage_step_source})"),
                Text(draft.triage_step),
                Text(f"\nPlaybook: {draft.playbook.title}", "bold underline")
                + Text(f"  [{draft.playbook.id}, from {draft.playbook.source}]"),
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
