"""Our own change format (README, *Connecting change sources*), for tools without a sender of their own:
`{"id", "service", "kind": "deploy|config|flag|model|infra", "summary", "at", "link", "author", "environment"}`.
`id`, `service` and `kind` are required; `at` defaults to the time it is received."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.clock import utcnow
from bot.config import AuthScheme
from bot.intake.changes.base import ChangeSender, Parsed, make_change
from bot.intake.senders.base import need, read_time

FIELDS = ("summary", "link", "author", "environment")


def parse(p: dict[str, Any], _: Mapping[str, str]) -> Parsed:
    extra = {k: p[k] for k in FIELDS if p.get(k) is not None}
    at = read_time(p["at"], "at") if p.get("at") not in (None, "") else utcnow()
    return make_change(id=str(need(p, "id")), source="change", service=need(p, "service"), kind=need(p, "kind"),
                       at=at, **extra)  # fmt: skip


SENDER = ChangeSender("change", parse, (AuthScheme.HMAC, AuthScheme.BEARER, AuthScheme.BASIC))
