"""Argo CD notifications: the `webhook` service with the template in docs/senders.md (*Connecting change sources*),
which renders `{"app", "project", "revision", "phase", "health", "finishedAt", "initiatedBy", "message", "url",
"environment"}`. Argo CD signs nothing: the operator adds `Authorization: Bearer <INCIBOT_WEBHOOK_TOKEN>` to the
service's headers (or `basicAuth`). A sync is recorded when its operation finished (Succeeded, Failed, Error);
Running records nothing. The service name is the application's name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import AuthScheme
from bot.intake.changes.base import ChangeSender, Ignored, Parsed, make_change
from bot.intake.senders.base import as_str, need, read_time

FINISHED = ("Succeeded", "Failed", "Error")


def parse(p: dict[str, Any], _: Mapping[str, str]) -> Parsed:
    app = need(p, "app")
    phase = as_str(p.get("phase"))
    if phase not in FINISHED:
        return Ignored(f"sync {phase or 'without phase'}: recorded when it finishes ({', '.join(FINISHED)})")
    revision, finished = as_str(p.get("revision")), as_str(p.get("finishedAt"))
    what = f"sync to {revision[:7]}" if revision else "sync"
    if phase != "Succeeded":  # Argo CD's message says why
        what += (
            f" ({phase.lower()}: {as_str(p.get('message'))})" if p.get("message") else f" ({phase.lower()})"
        )
    health = as_str(p.get("health"))
    if health and health != "Healthy":
        what += f", health {health}"
    return make_change(
        id=f"{app}@{revision or '-'}@{finished or '-'}", source="argocd", service=app, kind="deploy", summary=what,
        at=read_time(finished, "finishedAt"), author=as_str(p.get("initiatedBy")) or "automated sync",
        link=as_str(p.get("url")) or None, environment=as_str(p.get("environment")) or None,
    )  # fmt: skip


SENDER = ChangeSender("argocd", parse, (AuthScheme.BEARER, AuthScheme.BASIC))
