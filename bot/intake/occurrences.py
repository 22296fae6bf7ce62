"""Tickets keyed by occurrence, not by the sender's incident: what a notification means for what is posted.

A sender's incident (a *thread*: an Alertmanager group, a PagerDuty incident, a Statuspage incident...) can fire,
grow, resolve and fire again under the same id. Each firing after a resolve, or after the thread was quiet for
`occurrence_quiet_s` with none of its earlier items in the new notification, is a new occurrence: a new ticket,
keyed `<thread>#<n>` from the second on. News about an open occurrence (alerts that joined the group, a note, a
status update) is posted in its Slack thread; a notification that says nothing new is a duplicate.

Pure: `decide` reads the stored thread and the event and says what to do; the service stores the result.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from bot.intake.senders import EventKind, WebhookEvent
from bot.models import SenderIncident

SEEN_LIMIT = 5000  # item ids remembered per thread (newest kept): enough for any alert group's history


class Outcome(StrEnum):
    NEW = "accepted"  # a new occurrence: a new ticket and post
    UPDATE = "updated"  # news for the current occurrence: a thread reply
    RESOLVE = "resolved"
    DUPLICATE = "duplicate"  # nothing new: nothing is posted
    UNKNOWN = "unknown"  # about an incident this bot never received: nothing is posted
    HELD = "held"  # a resolve before its open (deliveries race): kept, and applied when the open arrives
    IGNORED = "ignored"


class Step(BaseModel):
    outcome: Outcome
    thread: SenderIncident | None = None  # the state to store (None: nothing to store)
    key: str = ""  # the ticket the step is about
    new: dict[str, str] = Field(default_factory=dict)  # the items that are news
    resolution: str | None = None  # a new occurrence that opens resolved: the resolve that came first


def occurrence_key(thread: str, number: int) -> str:
    return thread if number == 1 else f"{thread}#{number}"


def _remember(seen: list[str], items: dict[str, str]) -> list[str]:
    known = set(seen)
    return [*seen, *(i for i in items if i not in known)][-SEEN_LIMIT:]


def decide(current: SenderIncident | None, event: WebhookEvent, now: datetime, quiet_s: float) -> Step:
    if event.kind == EventKind.IGNORE:
        return Step(outcome=Outcome.IGNORED)
    seen = set(current.seen) if current else set()
    new = {i: line for i, line in event.items.items() if i not in seen}
    if current is None:
        if event.kind == EventKind.RESOLVE:  # the open may still be on its way: keep what the resolve says
            held = SenderIncident(thread=event.thread, source=event.source, key=event.thread, number=0, open=False,
                                  last_at=now, held_resolution=event.resolution or "")  # fmt: skip
            return Step(outcome=Outcome.HELD, thread=held, key=held.key)
        if event.kind != EventKind.OPEN:
            return Step(outcome=Outcome.UNKNOWN)
        thread = SenderIncident(thread=event.thread, source=event.source, key=event.thread, seen=_remember([], new),
                        components=_components(event), last_at=now)  # fmt: skip
        return Step(outcome=Outcome.NEW, thread=thread, key=thread.key, new=new)
    if current.number == 0:  # resolved before it opened: this open is its first occurrence, resolved at once
        if event.kind != EventKind.OPEN:
            return Step(outcome=Outcome.HELD, key=current.key)
        state = current.model_copy(update={"number": 1, "seen": _remember([], event.items), "last_at": now,
                                           "components": _components(event), "held_resolution": None})  # fmt: skip
        return Step(outcome=Outcome.NEW, thread=state, key=state.key, new=dict(event.items),
                    resolution=current.held_resolution)  # fmt: skip
    if not new:
        return Step(outcome=Outcome.DUPLICATE, key=current.key)
    changed = {"seen": _remember(current.seen, new), "last_at": now}
    if event.kind == EventKind.RESOLVE:
        state = current.model_copy(update=changed | {"open": False, "updates": current.updates + 1})
        return Step(outcome=Outcome.RESOLVE, thread=state, key=current.key, new=new)
    if event.kind == EventKind.UPDATE:
        state = current.model_copy(update=changed | {"updates": current.updates + 1})
        return Step(outcome=Outcome.UPDATE, thread=state, key=current.key, new=new)
    # OPEN: the same occurrence while it is open and either still shows what it showed before or spoke lately
    overlaps = len(new) < len(event.items)
    if current.open and (overlaps or (now - current.last_at).total_seconds() <= quiet_s):
        state = current.model_copy(update=changed | {"updates": current.updates + 1})
        return Step(outcome=Outcome.UPDATE, thread=state, key=current.key, new=new)
    number = current.number + 1
    state = current.model_copy(
        update=changed
        | {"key": occurrence_key(current.thread, number), "number": number, "open": True, "updates": 0,
           "components": _components(event) or current.components}
    )  # fmt: skip
    return Step(outcome=Outcome.NEW, thread=state, key=state.key, new=new)


def _components(event: WebhookEvent) -> list[str]:
    raw = event.ticket.raw if event.ticket else None
    inc = raw.get("incident") if isinstance(raw, dict) else None
    comps = inc.get("components") if isinstance(inc, dict) else None
    return [str(c["id"]) for c in comps or [] if isinstance(c, dict) and c.get("id")]
