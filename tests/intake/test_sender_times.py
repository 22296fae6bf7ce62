"""Senders' timestamps at and past the edges (issue 32): every change sender and every alert sender, through
the real HTTP endpoint. An unreadable time, or one no datetime holds in UTC, is a 422 naming the field; a
change stamped beyond `clock_skew_max_h` ahead (or not after 1970) is refused; a ticket stamped so is posted
with the time it was received. Never a 5xx, and nothing half-stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.clock import utcnow
from bot.config import AuthScheme, Settings
from bot.intake.changes import parse_change
from bot.intake.senders import parse
from bot.intake.senders.base import WebhookError, clock_skew, implausible, read_time
from bot.models import ChangeEvent
from bot.service import TriageService
from bot.store.schema import changes
from tests.intake import test_changes as tc

bot = tc.bot  # one service with every sender's credential configured, shared with the change-sender suite

# JSON Python's json module reads (Infinity, NaN) or that no datetime holds in UTC: 422 naming the field.
UNREADABLE: list[Any] = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", 1e20, 1e300, -1e308,
                         float("inf"), float("-inf"), float("nan"), 10**400, "yesterday", [], {}]  # fmt: skip
# Readable, but no sender reports now what happens tomorrow or before 1970.
IMPLAUSIBLE = [
    "2999-01-01T00:00:00Z",
    "9999-12-31T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1969-07-20T20:17:00Z",
    0,
]


def change_with_time(sender: str, value: Any, n: int) -> tuple[dict[str, Any], str]:
    """The sender's real payload as a new change, its time set to `value`; and that time's field name."""
    p = tc.with_id(sender, tc.load(tc.PAYLOAD[sender]), f"-time{n}")
    if sender == "change":
        p["at"] = value
        return p, "at"
    if sender == "github":
        p["deployment_status"]["updated_at"] = value
        return p, "deployment_status.updated_at"
    field = {"gitlab": "status_changed_at", "argocd": "finishedAt", "launchdarkly": "date"}[sender]
    p[field] = value
    return p, field


def stored_changes(service: TriageService) -> int:
    with service.store.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(changes)).scalar() or 0)


def alert(client: TestClient, source: str, payload: dict[str, Any]) -> Any:
    body = json.dumps(payload).encode()  # allow_nan: Infinity and NaN as Python's json writes and reads them
    headers = {"content-type": "application/json"} | tc.credentials(AuthScheme.HMAC, body)
    return client.post(f"/webhooks/{source}", content=body, headers=headers)


def ticket_with_time(source: str, value: Any, n: int) -> tuple[dict[str, Any], str]:
    """An alert sender's real opening payload as a new incident, its time set to `value`; and the field."""
    if source == "generic":
        return tc.load("generic/readme-open.json") | {"id": f"time-{n}", "created_at": value}, "created_at"
    if source == "opsgenie":
        p = tc.load("opsgenie/zulip-create.json")
        p["alert"] |= {"alertId": f"time-{n}", "createdAt": value}
        return p, "alert.createdAt"
    if source == "pagerduty":
        p = tc.load("pagerduty/zulip-triggered_v3.json")
        p["event"]["data"] |= {"id": f"time-{n}", "created_at": value}
        return p, "event.data.created_at"
    if source == "alertmanager":
        p = tc.load("alertmanager/debian-0.25-firing.json") | {"groupKey": f"time-{n}"}
        for a in p["alerts"]:
            a["startsAt"] = value
        return p, "alerts[].startsAt"
    p = tc.load("statuspage/zulip-incident_created.json")
    p["incident"] |= {"id": f"time-{n}", "created_at": value}
    return p, "created_at"


# ---- changes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sender", list(tc.CHANGE_SENDERS))
def test_an_unreadable_change_time_is_a_422_naming_the_field_and_stores_nothing(
    bot: tuple[TestClient, TriageService], sender: str
) -> None:
    client, service = bot
    for n, value in enumerate(UNREADABLE):
        if sender == "github" and not value:
            continue  # absent: the status's created_at is read instead
        payload, field = change_with_time(sender, value, n)
        before = stored_changes(service)
        r = tc.send(client, sender, payload)
        assert r.status_code == 422, (value, r.text)
        assert f"unreadable time in field {field}" in r.json()["error"], r.text
        assert stored_changes(service) == before


@pytest.mark.parametrize("sender", list(tc.CHANGE_SENDERS))
def test_a_change_stamped_ahead_of_the_clock_skew_or_before_1970_is_refused(
    bot: tuple[TestClient, TriageService], sender: str
) -> None:
    client, service = bot
    for n, value in enumerate(IMPLAUSIBLE):
        if sender == "launchdarkly" and isinstance(value, str):
            value = int(datetime.fromisoformat(value).timestamp() * 1000)  # its `date` is epoch milliseconds
        if sender in ("github", "argocd") and not isinstance(value, str):
            continue  # ISO 8601 only (a 0: GitHub reads created_at instead, Argo CD answers "unreadable")
        payload, _ = change_with_time(sender, value, 100 + n)
        before = stored_changes(service)
        r = tc.send(client, sender, payload)
        assert r.status_code == 422, (value, r.text)
        assert "ahead of this bot's clock" in r.json()["error"] or "not after 1970" in r.json()["error"]
        assert stored_changes(service) == before


@pytest.mark.parametrize("sender", list(tc.CHANGE_SENDERS))
def test_a_change_within_the_skew_is_stored_in_utc(
    bot: tuple[TestClient, TriageService], sender: str
) -> None:
    client, service = bot
    ahead = (utcnow() + timedelta(hours=23)).replace(microsecond=0)
    value: Any = ahead.astimezone(UTC).isoformat()
    if sender == "launchdarkly":
        value = int(ahead.timestamp() * 1000)
    payload, _ = change_with_time(sender, value, 200)
    r = tc.send(client, sender, payload)
    assert r.status_code == 202, r.text
    stored = [c for c in service.store.changes.latest(r.json()["service"], 200) if c.id == r.json()["id"]]
    assert stored and stored[0].at == ahead


def test_the_skew_is_a_setting() -> None:
    p = {"id": "skew", "service": "s", "kind": "deploy", "at": (utcnow() + timedelta(hours=3)).isoformat()}
    assert isinstance(parse_change("change", p, {}, Settings(clock_skew_max_h=4)), ChangeEvent)
    with pytest.raises(WebhookError, match="more than 2 h ahead"):
        parse_change("change", p, {}, Settings(clock_skew_max_h=2))
    assert clock_skew(None) == timedelta(hours=24)  # the default, documented on the setting


def test_the_issue_example_is_a_422(bot: tuple[TestClient, TriageService]) -> None:
    client, _ = bot
    body = b'{"id":"r3","service":"s","kind":"deploy","at":1e20}'
    r = client.post("/webhooks/change", content=body, headers={"content-type": "application/json",
                    "authorization": f"Bearer {tc.SECRETS['webhook_token']}"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"].startswith("missing or unreadable time in field at")


# ---- tickets -----------------------------------------------------------------------------------------------
SOURCES = ["generic", "opsgenie", "pagerduty", "alertmanager", "statuspage"]


@pytest.mark.parametrize("source", [s for s in SOURCES if s != "statuspage"])
def test_an_unreadable_ticket_time_is_a_422_naming_the_field(
    bot: tuple[TestClient, TriageService], source: str
) -> None:
    client, service = bot
    for n, value in enumerate(UNREADABLE):
        if source != "generic" and not value:
            continue  # the sender's time is absent: its fallback (PagerDuty's occurred_at, or now) is used
        payload, field = ticket_with_time(source, value, 300 + n)
        r = alert(client, source, payload)
        assert r.status_code == 422, (value, r.text)
        assert f"unreadable time in field {field}" in r.json()["error"], r.text
        assert service.store.thread(f"{source}:time-{300 + n}") is None


@pytest.mark.parametrize("source", SOURCES)
def test_a_ticket_stamped_ahead_or_before_1970_is_posted_with_the_time_it_came(
    bot: tuple[TestClient, TriageService], source: str
) -> None:
    client, service = bot
    for n, value in enumerate(IMPLAUSIBLE):
        if source == "opsgenie" and isinstance(value, str):
            value = int(datetime.fromisoformat(value).timestamp() * 1000)
        if (source != "generic" and not value) or (source == "statuspage" and not isinstance(value, str)):
            continue  # absent: the sender's fallback is used; Statuspage writes ISO 8601 only
        payload, _ = ticket_with_time(source, value, 400 + n)
        before = utcnow()
        r = alert(client, source, payload)
        assert r.status_code == 202 and r.json()["status"] == "accepted", (value, r.text)
        row = service.store.get(r.json()["key"])
        assert row is not None and before <= row.ticket.created_at <= utcnow(), (value, row and row.ticket)
        # Its context can be looked up (a ticket in 9999 or year 1 made the lookup overflow, silently).
        assert service.context.for_row(row) is not None


def test_a_ticket_within_the_skew_keeps_its_time(bot: tuple[TestClient, TriageService]) -> None:
    client, service = bot
    past = datetime(2019, 5, 15, 15, 20, 55, tzinfo=UTC)  # an alert firing for years is still that old
    for n, t in enumerate((past, (utcnow() + timedelta(hours=23)).replace(microsecond=0))):
        r = alert(client, "generic", ticket_with_time("generic", t.isoformat(), 500 + n)[0])
        row = service.store.get(r.json()["key"])
        assert r.status_code == 202 and row is not None and row.ticket.created_at == t


# ---- the one reader and the window, directly ---------------------------------------------------------------
def test_read_time_reads_every_senders_spelling_in_utc() -> None:
    want = datetime(2021, 4, 28, 19, 50, tzinfo=UTC)
    for value in ("2021-04-28T19:50:00Z", "2021-04-28T21:50:00+02:00", "2021-04-28 21:50:00 +0200",
                  "2021-04-28T19:50:00", 1619639400, 1619639400000, 1619639400.0, want):  # fmt: skip
        assert read_time(value, "t") == want and read_time(value, "t").tzinfo == UTC, value
    for value in (*UNREADABLE, None, "", True):
        with pytest.raises(WebhookError, match="unreadable time in field t"):
            read_time(value, "t")


def test_implausible_compares_extreme_offsets_without_overflowing() -> None:
    now, skew = utcnow(), timedelta(hours=24)
    late = datetime.fromisoformat("9999-12-31T23:59:59-05:00")
    early = datetime.fromisoformat("0001-01-01T00:00:00+05:00")
    assert "ahead" in (implausible(late, now, skew) or "") and "1970" in (implausible(early, now, skew) or "")
    assert implausible(now + timedelta(hours=23), now, skew) is None
    ticket = parse("generic", {"id": "x", "title": "t", "created_at": "2999-01-01T00:00:00Z"}).ticket
    assert ticket is not None and ticket.created_at.year < 2999
