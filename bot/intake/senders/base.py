"""What every sender's parser produces (`WebhookEvent`), the `Sender` record the registry holds, and the helpers
parsers share to read untrusted JSON without crashing on a wrong type.

Each notification is one event about a *thread*: the sender's lasting identity for an incident (a PagerDuty
incident, an Alertmanager group of one receiver, an Opsgenie alert, a Statuspage incident). `items` are what the
notification says, by a stable id (an alert firing since a time, a Statuspage update, a PagerDuty event), so the
service can tell news from a repeat, and a group firing again from one that grows (`bot/intake/occurrences.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from bot.config import AuthScheme, Settings
from bot.models import Link, SenderSeverity, Ticket

MAX_LINES = 20  # alerts or updates listed in one ticket or thread reply; the rest are counted


class WebhookError(ValueError):
    """A payload we cannot use; `status` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class EventKind(StrEnum):
    OPEN = "open"  # firing: a new ticket, or news for the open one (an alert group that grew)
    UPDATE = "update"  # more about a known incident: a note, a priority change, a status update
    RESOLVE = "resolve"
    IGNORE = "ignore"  # nothing the bot shows changes (acknowledged, ...): answered 2xx with the reason


class WebhookEvent(BaseModel):
    kind: EventKind
    source: str
    thread: str = ""  # "<source>:<the sender's id for the incident>"; its occurrences share it
    ticket: Ticket | None = None  # OPEN: what a new occurrence posts
    items: dict[str, str] = Field(default_factory=dict)  # stable id -> one line shown when it is news
    note: str = ""  # the headline of a thread reply (IGNORE: why nothing changes)
    resolution: str = ""  # RESOLVE: what fixed it, only if the sender said something beyond stock words
    merged_into: Link | None = None  # RESOLVE by merging into another incident
    severity: list[SenderSeverity] = Field(default_factory=list)  # UPDATE: the sender's severity now
    links: list[Link] = Field(default_factory=list)  # UPDATE: links of what is new
    component: str | None = None  # Statuspage component notification: the component's id


@dataclass(frozen=True)
class Sender:
    """One webhook sender, served at `/webhooks/<name>`. `auth` and `severity_map` are its defaults; the
    operator's `webhook_auth` and `severity_map` settings replace them per source."""

    name: str
    parse: Callable[[dict[str, Any]], WebhookEvent]  # a JSON object -> an event, or WebhookError
    auth: tuple[AuthScheme, ...]  # what this sender can send, the recommended scheme first
    severity_map: Mapping[str, str] = field(default_factory=dict)  # its value -> taxonomy severity (any case)


def need(obj: Any, *path: str) -> Any:
    """The value at `path`, or a WebhookError naming the missing field."""
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur or cur[p] in (None, ""):
            raise WebhookError(f"missing field {'.'.join(path)}")
        cur = cur[p]
    return cur


def as_obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def make_ticket(**kw: Any) -> Ticket:
    """A Ticket, or a WebhookError (422) naming the first invalid field. Its time is read as every sender's is
    (`read_time`); whether it is plausible is the registry's call (`bot/intake/senders/__init__.py`)."""
    if kw.get("created_at") is not None:
        kw["created_at"] = read_time(kw["created_at"], "created_at")
    try:
        return Ticket.model_validate(kw)
    except ValidationError as e:
        err = e.errors()[0]
        raise WebhookError(f"invalid field {'.'.join(map(str, err['loc']))}: {err['msg']}") from e


# --- a sender's timestamps, read in this one place by the alert and the change senders ---------------------
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_ABOVE = (
    2e10  # a Unix time above this is in milliseconds (in seconds: after the year 2603), as pydantic reads it
)
_GITLAB = "%Y-%m-%d %H:%M:%S %z"  # "2021-04-28 21:50:00 +0200"


def read_time(value: Any, field: str) -> datetime:
    """A sender's timestamp as an aware UTC datetime: a datetime, ISO 8601, GitLab's "2021-04-28 21:50:00
    +0200", or a Unix time in seconds or milliseconds (Opsgenie, LaunchDarkly). A WebhookError (422) naming
    the field when it is none of those or no datetime holds it in UTC (1e20, Infinity, NaN,
    "9999-12-31T23:59:59-05:00"): Python raises OverflowError or OSError there, not only ValueError."""
    try:
        if isinstance(value, datetime):
            t = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            t = datetime.fromtimestamp(value / 1000 if abs(value) > MS_ABOVE else value, UTC)
        elif isinstance(value, str) and value.strip():
            t = _iso_or_gitlab(value.strip())
        else:
            raise ValueError("not a time")
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)  # naive: UTC by convention
    except (ValueError, OverflowError, OSError) as e:
        raise WebhookError(f"missing or unreadable time in field {field}: {str(value)[:40]!r}") from e


def _iso_or_gitlab(v: str) -> datetime:
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        return datetime.strptime(v, _GITLAB)


def clock_skew(settings: Settings | None) -> timedelta:
    """How far ahead of ours a sender's clock may be (`clock_skew_max_h`; its default without settings)."""
    if settings is None:
        return timedelta(hours=Settings.model_fields["clock_skew_max_h"].default)
    return timedelta(hours=settings.clock_skew_max_h)


def implausible(t: datetime, now: datetime, skew: timedelta) -> str | None:
    """Why `t` cannot be when something a sender reports now happened, or None. Only the future is bounded by
    the skew: an alert can have fired for weeks and a webhook be redelivered days later, but nothing reported
    now happened tomorrow. Before the Unix epoch is an unset or corrupt stamp (and near year 1 the change
    lookup around it overflows). Comparing aware datetimes never overflows, whatever their offsets."""
    if t > now + skew:
        hours = skew / timedelta(hours=1)
        return f"{t.isoformat()} is more than {hours:g} h ahead of this bot's clock (clock_skew_max_h)"
    if t <= EPOCH:
        return f"{t.isoformat()} is not after 1970-01-01 (an unset or corrupt time)"
    return None


def links_of(*pairs: tuple[str, Any]) -> list[Link]:
    """Links from (label, url) pairs, skipping empty and repeated URLs."""
    out: list[Link] = []
    for label, url in pairs:
        if (u := as_str(url)) and all(x.url != u for x in out):
            out.append(Link(label=label, url=u))
    return out


def sender_severity(name: str, value: Any) -> list[SenderSeverity]:
    v = as_str(value) if not isinstance(value, int) else str(value)
    return [SenderSeverity(name=name, value=v)] if v else []


def digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def listed(lines: list[str], what: str = "more") -> list[str]:
    """At most MAX_LINES lines; the cut is said, never silent."""
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} {what} not listed here."]
