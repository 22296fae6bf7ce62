"""Block Kit: a draft's blocks stay inside Slack's limits and escape ticket text."""

from __future__ import annotations

from bot.config import Settings
from bot.delivery.slack import blocks
from bot.models import (
    DraftPlaybook,
    LabelDecision,
    LLMUsage,
    PlaybookStep,
    SimilarIncident,
    Ticket,
    TriageDraft,
)
from bot.taxonomy import Taxonomy


def test_blocks_stay_inside_slack_limits_and_escape_ticket_text() -> None:
    tax = Taxonomy.load(Settings().taxonomy_path)
    ticket = Ticket(id="t", title="<!channel> x" * 100, text="<https://evil|click> " * 2000)
    draft = TriageDraft(
        ticket_id="t",
        taxonomy="genai",
        labels={
            f: LabelDecision(field=f, label=tax.fields[f].ids[0], confidence=0.5, source="llm")
            for f in tax.fields
        },
        similar=[
            SimilarIncident(id=f"s{i}", title="y" * 500, score=0.5, resolution="z" * 5000) for i in range(20)
        ],
        triage_step="check " * 1000,
        triage_step_source="llm",
        playbook=DraftPlaybook(id="p", title="P", source="llm", steps=[PlaybookStep(action="a" * 900)] * 10),
        llm=LLMUsage(model="m"),
    )
    out = blocks.draft_blocks("k", ticket, draft, tax, "llm")
    assert len(out) <= 50 and out[0]["type"] == "header" and len(out[0]["text"]["text"]) <= 150
    for b in out:
        assert len((b.get("text") or {}).get("text", "")) <= 3000
        for f in b.get("fields", []):
            assert len(f["text"]) <= 2000
    mrkdwn = str([b for b in out if b["type"] != "header"])  # a header is plain text: Slack does not parse it
    assert "<!channel>" not in mrkdwn and "<https://evil|click>" not in mrkdwn
    assert "<!channel>" not in blocks.fallback_text(ticket, draft)
    assert [e["action_id"] for e in out[-1]["elements"]] == ["confirm", "correct", "reject"]
