"""Pure parts of the Slack bot: webhook adapters, signatures and Block Kit limits."""

from __future__ import annotations

import time

import pytest

from bot.config import Settings
from bot.delivery.slack import blocks
from bot.intake.senders import WebhookError, parse
from bot.models import (
    DraftPlaybook,
    LabelDecision,
    LLMUsage,
    PlaybookStep,
    SimilarIncident,
    Ticket,
    TriageDraft,
)
from bot.server import check_webhook_auth, webhook_signature
from bot.taxonomy import Taxonomy


def test_generic_open_and_resolve() -> None:
    ev = parse("generic", {"id": 7, "title": "API errors", "service": "openai"})
    assert ev.kind == "open" and ev.thread == "generic:7" and ev.ticket and ev.ticket.service == "openai"
    ev = parse("generic", {"id": 7, "status": "resolved", "resolution": "rolled back"})
    assert ev.kind == "resolve" and ev.resolution == "rolled back"


@pytest.mark.parametrize(
    "source, payload, message",
    [
        ("generic", {"title": "x"}, "missing field id"),
        ("generic", {"id": "1", "title": ["not", "text"]}, "must be strings"),
        ("opsgenie", {"action": "Create", "alert": {"alertId": "a"}}, "missing field alert.message"),
        ("alertmanager", {"alerts": []}, "non-empty list"),
        ("statuspage", {"incident": {"id": "x"}}, "invalid incident"),
        ("pagerduty", {"event": "string"}, "missing field event.event_type"),
    ],
)
def test_malformed_payloads_say_what_is_wrong(source: str, payload: dict, message: str) -> None:
    with pytest.raises(WebhookError, match=message):
        parse(source, payload)


def test_wrong_types_deep_inside_are_a_422_not_a_crash() -> None:
    with pytest.raises(WebhookError) as e:
        parse("alertmanager", {"alerts": [{"labels": "oops"}], "commonLabels": {}, "commonAnnotations": {}})
    assert e.value.status == 422


def test_hmac_auth() -> None:
    s = Settings(webhook_secret="k")
    now = int(time.time())
    body = b'{"id": 1}'
    good = {"x-incibot-timestamp": str(now), "x-incibot-signature": webhook_signature("k", str(now), body)}
    assert check_webhook_auth(s, "generic", good, body) is None
    assert (check_webhook_auth(s, "generic", good, body + b" ") or "").startswith(
        "bad signature; generic expects"
    )
    assert "stale" in (check_webhook_auth(s, "generic", good, body, now=now + 3600) or "")
    t = Settings(webhook_token="tok")
    assert check_webhook_auth(t, "generic", {"authorization": "Bearer tok"}, body) is None
    assert check_webhook_auth(t, "generic", {"authorization": "Bearer no"}, body) is not None


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
