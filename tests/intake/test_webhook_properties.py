"""Property: every webhook endpoint, fed its own real payloads (tests/payloads/<sender>/) with fields replaced
by hostile values, answers no 5xx, and every 2xx stores what it says. Issue 32's class of defect: a time or a
type no parser expected, deep in a payload, became a 500 (nothing stored, the sender retrying forever) or a
record no later read could use.

Every alert sender (`SENDERS`) and change sender (`CHANGE_SENDERS`), through the real HTTP app, authenticated
as each sender is. One to three field paths of a real payload, containers included, get a generated value:
extreme numbers (1e308, Infinity, NaN, 10**400), times at years 1 and 9999 with offsets, unicode that no
storage takes (lone surrogates, NUL, bidi and zero-width controls), and any JSON of any type
(tests/test_fuzz.py's). Fixed size and derandomized: the same examples on every run, EXAMPLES per endpoint,
about 30 s of one core for the whole file."""

from __future__ import annotations

import copy
import itertools
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.clock import utcnow
from bot.config import AuthScheme
from bot.intake.changes import CHANGE_SENDERS
from bot.intake.senders import SENDERS
from bot.intake.senders.base import clock_skew, implausible
from bot.service import TriageService
from bot.store.schema import changes
from tests.helpers import PAYLOADS
from tests.intake import test_changes as tc
from tests.test_fuzz import json_values
from tests.test_hostile_input import clean_everywhere, stored_keys

bot = tc.bot  # one server with every sender's credential configured (the change-sender suite's)

EXAMPLES = 150  # per endpoint: 10 endpoints x 150 = 1,500 requests, about 30 s of one core
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure is reproducible as is
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what replaces a field ----------------------------------------------------------------------------------
numbers = st.sampled_from(
    [1e308, -1e308, 1e300, 1e20, -1e20, float("inf"), float("-inf"), float("nan"), 0, -1, 2**63, 10**400, 0.5]
) | st.integers(min_value=-(2**70), max_value=2**70)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
dates = st.sampled_from(
    ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
     "2999-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31 23:59:59 -0500", "0001-01-01 00:00:00 +0500"]
) | st.builds(
    lambda t, off, iso: t.replace(tzinfo=timezone(off)).isoformat(sep="T" if iso else " "),
    st.datetimes(), offsets, st.booleans(),
)  # fmt: skip
unsafe = st.text(
    st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Zs", "Lo"]), max_size=20
) | st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u202e", "\u2066", "\ufeff", "\u200b", "<!channel>", "x" * 5000]
)
values = numbers | dates | unsafe | json_values
TIME_FIELD = re.compile(
    r"(_at|At|^at|^date|^time|stamp)$"
)  # created_at, startsAt, finishedAt, date, timestamp


# --- the endpoints and their real payloads ------------------------------------------------------------------
def examples(folder: str) -> list[dict[str, Any]]:
    files = sorted((PAYLOADS / folder).glob("*.json"))
    assert files, f"no real payloads in tests/payloads/{folder}/"
    return [json.loads(f.read_text()) for f in files]


ENDPOINTS = [("alert", s) for s in SENDERS] + [("change", s) for s in CHANGE_SENDERS]
PAYLOADS_OF = {(kind, name): examples(name) for kind, name in ENDPOINTS}


def paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field path in a JSON value (objects' keys, lists' indices), containers included."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [p for k, v in items for p in [(*at, k), *paths(v, (*at, k))]]


def replaced(payload: Any, path: tuple[Any, ...], value: Any) -> Any:
    node = payload
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return payload


_fresh = itertools.count()


def fresh(kind: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The same delivery about a new incident or change, so it is stored rather than a duplicate."""
    n = f"-prop{next(_fresh)}"
    if kind == "change":
        try:
            return tc.with_id(name, payload, n)
        except KeyError:  # GitHub's `deployment` event: its id is the deployment's
            payload = copy.deepcopy(payload)
            payload["deployment"]["id"] = f"{payload['deployment']['id']}{n}"
            return payload
    p = copy.deepcopy(payload)
    node, key = {"generic": (p, "id"), "opsgenie": (p.get("alert"), "alertId"),
                 "alertmanager": (p, "groupKey"), "pagerduty": (p.get("event", {}).get("data"), "id"),
                 "statuspage": (p.get("incident"), "id")}[name]  # fmt: skip
    if isinstance(node, dict) and key in node:
        node[key] = f"{node[key]}{n}"
    return p


# --- sending and checking -----------------------------------------------------------------------------------
def post(client: TestClient, kind: str, name: str, payload: Any) -> Any:
    if kind == "change":
        return tc.send(client, name, payload)
    body = json.dumps(payload).encode()  # Infinity, NaN and lone surrogates as Python's json writes them
    headers = {"content-type": "application/json"} | tc.credentials(AuthScheme.HMAC, body)
    return client.post(f"/webhooks/{name}", content=body, headers=headers)


def count_changes(service: TriageService) -> int:
    with service.store.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(changes)).scalar() or 0)


def plausible(t: datetime, service: TriageService) -> bool:
    return implausible(t.astimezone(UTC), utcnow(), clock_skew(service.settings)) is None


def check_alert(service: TriageService, r: Any, before: int) -> None:
    answer = r.json()
    if r.status_code >= 300 or answer["status"] in ("ignored", "unknown", "held"):
        assert len(stored_keys(service)) == before, answer  # a refusal or a no-op stores no ticket
        return
    if answer["status"] == "duplicate" and not answer["key"]:
        return
    row = service.store.get(answer["key"])
    assert row is not None, answer  # accepted, updated, resolved, duplicate: about a ticket that is stored
    if answer["status"] == "accepted":
        clean_everywhere(service, answer["key"])
        assert plausible(row.ticket.created_at, service), row.ticket.created_at
        assert service.context.for_row(row) is not None  # its context can be looked up, not silently lost


def check_change(service: TriageService, name: str, r: Any, before: int) -> None:
    answer = r.json()
    if r.status_code >= 300 or answer["status"] == "ignored":
        assert count_changes(service) == before, answer
        return
    with service.store.engine.connect() as c:
        row = c.execute(
            select(changes).where(changes.c.source == name, changes.c.id == answer["id"])
        ).mappings()
        stored = row.first()
    assert stored is not None, answer  # accepted, or a duplicate of one stored before
    assert answer["status"] == "duplicate" or stored["service"] == answer["service"], (answer, stored)
    at = stored["at"] if stored["at"].tzinfo else stored["at"].replace(tzinfo=UTC)
    assert plausible(at, service), at  # a change from 2999 would be listed first, and kept, forever
    assert count_changes(service) == before + (answer["status"] == "accepted")


@pytest.mark.parametrize(("kind", "name"), ENDPOINTS, ids=[f"{k}-{n}" for k, n in ENDPOINTS])
@PROPERTY
@given(data=st.data())
def test_every_endpoint_answers_no_5xx_and_stores_what_it_says(
    bot: tuple[TestClient, TriageService], kind: str, name: str, data: st.DataObject
) -> None:
    client, service = bot
    payload = data.draw(st.sampled_from(PAYLOADS_OF[(kind, name)]), label="payload")
    if data.draw(st.booleans(), label="fresh"):
        payload = fresh(kind, name, payload)
    else:
        payload = copy.deepcopy(payload)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        where = paths(payload)
        if not where:
            break
        # Half the time a field that holds a time, where most of a payload's meaning is in few fields.
        times = [p for p in where if isinstance(p[-1], str) and TIME_FIELD.search(p[-1])]
        on_time = bool(times) and data.draw(st.booleans(), label="a time field")
        path = data.draw(st.sampled_from(times if on_time else where), label="path")
        payload = replaced(payload, path, data.draw(numbers | dates if on_time else values, label="value"))
    before = count_changes(service) if kind == "change" else len(stored_keys(service))
    r = post(client, kind, name, payload)
    assert r.status_code < 500, r.text
    event(f"{r.status_code} {r.json().get('status', '')}")  # --hypothesis-show-statistics: what was reached
    assert r.status_code != 401, r.text  # authenticated as the sender is: the parsers are what is tested
    if kind == "change":
        check_change(service, name, r, before)
    else:
        check_alert(service, r, before)


def test_every_registered_endpoint_is_driven() -> None:
    assert {n for k, n in ENDPOINTS if k == "alert"} == set(SENDERS)
    assert {n for k, n in ENDPOINTS if k == "change"} == set(CHANGE_SENDERS)
