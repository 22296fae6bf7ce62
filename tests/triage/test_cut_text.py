"""Text past `max_text_chars` is cut before embedding and drafting, and the draft says so (it was cut silently)."""

from __future__ import annotations

from bot.config import Settings
from bot.models import Ticket
from bot.store.vectors import VectorStore
from bot.triage.pipeline import Triager


def test_a_cut_ticket_says_so_and_a_short_one_does_not(settings: Settings, store: VectorStore) -> None:
    triager = Triager(settings.model_copy(update={"max_text_chars": 500}), store, None)
    long = Ticket(id="long", title="Errors on chat completions", text="HTTP 500 from the API. " * 1000)
    draft = triager.triage(long, use_llm=False)
    cut = [w for w in draft.warnings if "cut to its first 500 of" in w]
    assert cut == [
        f"Ticket text cut to its first 500 of {len(long.body):,} characters (max_text_chars) for triage"
    ]
    short = triager.triage(Ticket(id="short", title="Errors on chat completions"), use_llm=False)
    assert not [w for w in short.warnings if "cut" in w]


def test_the_terminal_shows_the_drafts_warnings(settings: Settings, store: VectorStore) -> None:
    from rich.console import Console

    from bot.delivery.terminal import render

    triager = Triager(settings.model_copy(update={"max_text_chars": 500}), store, None)
    draft = triager.triage(
        Ticket(id="long", title="Errors", text="HTTP 500 from the API. " * 100), use_llm=False
    )
    console = Console(record=True, width=200)
    render(draft, triager.taxonomy, settings.confident_at, console)
    assert "warning: Ticket text cut to its first 500 of" in console.export_text()


def test_no_table_header_when_no_similar_incident_records_a_fix(
    settings: Settings, store: VectorStore
) -> None:
    from rich.console import Console

    from bot.delivery.terminal import render

    triager = Triager(settings, store, None)
    draft = triager.triage(Ticket(id="t", title="Errors on chat completions"), use_llm=False)
    draft.similar = [s.model_copy(update={"fix": None}) for s in draft.similar]
    console = Console(record=True, width=200)
    render(draft, triager.taxonomy, settings.confident_at, console)
    shown = console.export_text()
    assert f"{len(draft.similar)} of {len(draft.similar)} record no fix" in shown
    assert "how it was fixed" not in shown
