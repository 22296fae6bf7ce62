"""Atlassian Statuspage incidents (the `/api/v2/incidents.json` schema) as history records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.models import HistoricalIncident
from bot.text import html_to_text, informative

# Statuspage's impact scale onto the default taxonomy: history labels, and the statuspage sender's severity map.
IMPACT_TO_SEVERITY = {
    "critical": "sev1",
    "major": "sev2",
    "minor": "sev3",
    "none": "sev4",
    "maintenance": "sev4",
}
# Update statuses after the first ("investigating") whose text can say what fixed it; the genai-status dataset
# (evals/adapters.py) has one column per stage with these names.
LATER_STAGES = ("identified", "monitoring", "resolved", "postmortem")
# Incident statuses that mean it is over (`completed`: a maintenance). Not LATER_STAGES: "identified" and
# "monitoring" updates come while the incident is still open.
DONE_STATUSES = ("resolved", "postmortem", "completed")


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def incident_from_statuspage(obj: dict[str, Any], source: str = "statuspage") -> HistoricalIncident:
    """Title and first update are what is known at triage time; later updates are the resolution."""
    if not isinstance(obj, dict) or not obj.get("id") or not obj.get("name"):
        raise ValueError("a Statuspage incident needs at least 'id' and 'name'")
    updates = sorted(obj.get("incident_updates") or [], key=lambda u: u.get("created_at") or "")
    bodies = [(u.get("status") or "", html_to_text(u.get("body") or "")) for u in updates]
    first = bodies[0][1] if bodies else ""
    later = [b for _, b in bodies[1:]]
    resolution = informative([b for s, b in bodies[1:] if s in LATER_STAGES]) or informative(later)
    components = [c.get("name") for c in obj.get("components") or [] if c.get("name")]
    impact = obj.get("impact")
    return HistoricalIncident(
        id=f"{source}:{obj['id']}",
        title=obj["name"],
        text=first,
        service=components[0] if components else None,
        component=", ".join(components) or None,
        source=source,
        created_at=_ts(obj.get("created_at") or obj.get("started_at")) or datetime.now().astimezone(),
        resolved_at=_ts(obj.get("resolved_at")),
        link=obj.get("shortlink"),
        labels={"severity": [IMPACT_TO_SEVERITY[impact]]} if impact in IMPACT_TO_SEVERITY else {},
        resolution="\n".join(resolution),
        later_text="\n".join(later),
    )
