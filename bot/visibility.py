"""When a past incident's labels, fix and later updates became visible: the one rule for replaying history.

A team triaging a ticket at time t has seen the labels and the fix of an older incident only if that incident was
resolved (and its review written) before t; an incident opened before t but still open had neither. The eval
replays history by this rule everywhere a past incident's outcome is used (retrieval, the neighbours' vote, the
classifier's training labels, the LLM's verdict tally). The running bot needs no such cut: its history only holds
incidents that were resolved and labelled already.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

# An incident with no resolved time is taken as resolved this long after it opened. 7 days exceeds the 95th
# percentile of time-to-resolve in every labelled dataset (from 3.4 h on github-status to 91.5 h on GCP; medians
# 0-5.5 h), so at most ~5% of such incidents would in fact still be open when they join the history; it costs
# little, since a week is short beside histories of years.
UNRESOLVED_DELAY = timedelta(days=7)


class Dated(Protocol):
    """Anything with an opening and an (optional) resolution time: `bot.models.HistoricalIncident`."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def resolved_at(self) -> datetime | None: ...


def visible_from(incident: Dated, unresolved_delay: timedelta = UNRESOLVED_DELAY) -> datetime:
    """The moment the incident's outcome (labels, resolution, later text) became known: when it was resolved
    (never before it opened, whatever a dirty record says), else `unresolved_delay` after it opened."""
    created, resolved = incident.created_at, incident.resolved_at
    if resolved is None:
        return created + unresolved_delay
    return max(created, resolved)


def visible_at(incident: Dated, t: datetime, unresolved_delay: timedelta = UNRESOLVED_DELAY) -> bool:
    """Whether a ticket opened at `t` could have seen the incident's outcome (strictly before `t`)."""
    return visible_from(incident, unresolved_delay) < t
