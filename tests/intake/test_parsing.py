"""Senders' parsers on bad input: each refusal says what is wrong (a 4xx), never a crash."""

from __future__ import annotations

import pytest

from bot.intake.senders import WebhookError, parse


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
