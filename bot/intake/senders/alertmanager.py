"""Prometheus Alertmanager `webhook_configs` notifications: one alert group of one receiver per delivery, the
whole group every time (firing and resolved alerts), cut to `max_alerts` with the rest counted."""

from __future__ import annotations

from typing import Any

from bot.clock import utcnow
from bot.config import AuthScheme
from bot.intake.senders.base import (
    EventKind,
    Sender,
    WebhookError,
    WebhookEvent,
    as_obj,
    as_str,
    digest,
    links_of,
    listed,
    make_ticket,
    need,
    read_time,
    sender_severity,
)

_SHOWN_ELSEWHERE = {"alertname", "severity"}


def _alert_id(a: dict[str, Any]) -> str:
    """An alert firing since a time: the same alert firing again after it resolved is another item."""
    labels = as_obj(a.get("labels"))
    fp = as_str(a.get("fingerprint")) or digest(*(f"{k}={v}" for k, v in sorted(labels.items())))
    resolved = ":resolved" if a.get("status") == "resolved" else ""
    return f"{fp}@{a.get('startsAt') or ''}{resolved}"


def _alert_line(a: dict[str, Any], common: dict[str, Any]) -> str:
    labels, ann = as_obj(a.get("labels")), as_obj(a.get("annotations"))
    own = ", ".join(f"{k}={v}" for k, v in labels.items() if k not in _SHOWN_ELSEWHERE and common.get(k) != v)
    what = as_str(ann.get("description")) or as_str(ann.get("summary")) or as_str(ann.get("message"))
    head = f"[{a.get('status') or 'firing'}] {labels.get('alertname') or ''}" + (f" ({own})" if own else "")
    return (head + (f": {what}" if what else ""))[:400]


def parse(p: dict[str, Any]) -> WebhookEvent:
    alerts = need(p, "alerts")
    if not isinstance(alerts, list) or not alerts:
        raise WebhookError("alerts must be a non-empty list")
    if not all(isinstance(a, dict) for a in alerts):
        raise WebhookError("each alert must be an object")
    common_l, common_a = as_obj(p.get("commonLabels")), as_obj(p.get("commonAnnotations"))
    # A group is the receiver's groupKey: the same every time that group fires (occurrences tell them apart).
    group = as_str(p.get("groupKey"))
    thread = "alertmanager:" + (
        digest(as_str(p.get("receiver")), group) if group else digest(*sorted(_alert_id(a) for a in alerts))
    )
    items = {_alert_id(a): _alert_line(a, common_l) for a in alerts}
    firing = [a for a in alerts if a.get("status") != "resolved"]
    truncated = p.get("truncatedAlerts") if isinstance(p.get("truncatedAlerts"), int) else 0
    cut = (
        f" Alertmanager left {truncated} more alert(s) out of this notification (max_alerts)."
        if truncated
        else ""
    )
    if p.get("status") == "resolved":
        return WebhookEvent(kind=EventKind.RESOLVE, source="alertmanager", thread=thread, items=items,
                            note=f"All {len(alerts)} alert(s) of the group resolved in Alertmanager.{cut}")  # fmt: skip
    first = firing[0] if firing else alerts[0]
    labels, ann = as_obj(first.get("labels")), as_obj(first.get("annotations"))
    title = (
        as_str(common_a.get("summary")) or as_str(ann.get("summary")) or as_str(common_l.get("alertname"))
        or as_str(labels.get("alertname"))
    )  # fmt: skip
    if not title:
        raise WebhookError("missing field alerts[0].labels.alertname")
    counts = f"{len(firing)} firing, {len(alerts) - len(firing)} resolved.{cut}"
    facts = [
        counts,
        "Labels: " + ", ".join(f"{k}={v}" for k, v in common_l.items()) if common_l else "",
        *(
            f"{k}: {v}"
            for k, v in common_a.items()
            if k not in ("summary", "runbook_url") and isinstance(v, str)
        ),
        *listed([items[_alert_id(a)] for a in alerts], "more alerts"),
    ]
    links = links_of(
        ("Runbook", common_a.get("runbook_url") or ann.get("runbook_url")),
        ("Source", first.get("generatorURL")),
        ("Alertmanager", p.get("externalURL")),
    )
    ticket = make_ticket(
        id=thread, title=title, text="\n".join(f for f in facts if f), source="alertmanager", raw=p, links=links,
        service=common_l.get("service") or labels.get("service") or labels.get("job"),
        created_at=read_time(first.get("startsAt") or utcnow(), "alerts[].startsAt"),
        severity=sender_severity("severity", common_l.get("severity") or labels.get("severity")),
    )  # fmt: skip
    new_links = links_of(*(("Runbook", as_obj(a.get("annotations")).get("runbook_url")) for a in firing),
                         *(("Source", a.get("generatorURL")) for a in firing))  # fmt: skip
    return WebhookEvent(kind=EventKind.OPEN, source="alertmanager", thread=thread, ticket=ticket, items=items,
                        note=f"New in this alert group ({counts})", links=new_links)  # fmt: skip


# `http_config` offers authorization (Bearer) and basic_auth. Severities follow the kube-prometheus convention.
SENDER = Sender(
    name="alertmanager",
    parse=parse,
    auth=(AuthScheme.BEARER, AuthScheme.BASIC, AuthScheme.HMAC),
    severity_map={"critical": "sev2", "error": "sev3", "warning": "sev3", "info": "sev4", "none": "sev4"},
)
