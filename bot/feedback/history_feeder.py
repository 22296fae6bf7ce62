"""Engineers' verdicts and resolutions -> the history: labelled incidents upserted into the vector store.

A write the history store cannot take (a Chroma server down) is not lost: the ticket is marked
`history_pending` in the SQL store and written again, from the SQL record, once the history answers.
"""

from __future__ import annotations

import logging
import time

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.sql import Store
from bot.store.vectors import HistoryError, VectorStore, by_id
from bot.triage.pipeline import Triager

log = logging.getLogger("incibot")


class HistoryFeeder:
    def __init__(self, settings: Settings, store: Store, history: VectorStore, triager: Triager) -> None:
        self.settings, self.store, self.history, self.triager = settings, store, history, triager
        self._next_retry = 0.0

    def incident(self, key: str) -> HistoricalIncident | None:
        """The ticket as history: the engineer's labels and fix, else its resolution; None if it has neither."""
        inc = self.store.labelled_incident(key)
        if inc is None:
            row = self.store.get(key)
            if row is None or not row.resolution:
                return None
            inc = HistoricalIncident(
                **row.ticket.model_dump(exclude={"id", "raw"}), id=key, resolution=row.resolution
            )
        if self.settings.redact_in_history:
            inc = self.triager.preparer.redacted(inc)
            inc = inc.model_copy(update={"resolution": self.triager.redactor.redact(inc.resolution).text})
        return inc

    def learn(self, key: str) -> HistoricalIncident | None:
        """Upsert the ticket into the history; None if there is nothing to learn or the history is down (then
        it is kept pending)."""
        inc = self.incident(key)
        return inc if inc is not None and self._write(key, inc) else None

    def _write(self, key: str, inc: HistoricalIncident) -> bool:
        try:
            self.history.upsert([inc])
        except HistoryError as e:
            log.warning("history unavailable, %s kept for later: %s", key, e)
            self.store.update_ticket(key, history_pending=1)
            return False
        self.store.update_ticket(key, history_pending=0)
        return True

    def label(
        self, incident_id: str, labels: dict[str, list[str]], user_id: str, fix: str | None = None
    ) -> HistoricalIncident | None:
        """An engineer's labels (and fix) for a past incident of the history (`/triage label`), upserted as a
        verdict's labels are: its other labels kept, who labelled it recorded. None: no such incident, nothing
        written. Raises HistoryError when the store cannot be read or written: unlike a verdict there is no SQL
        record to keep it pending in, so the caller refuses the answer and the engineer submits it again."""
        inc = by_id(self.history, incident_id)
        if inc is None:
            return None
        merged = dict(inc.labels)
        for f, chosen in labels.items():
            # A field left as preselected keeps all its labels (a multi-label field's others too).
            if not set(chosen) <= set(merged.get(f, [])):
                merged[f] = list(chosen)
        update: dict[str, object] = {"labels": merged, "labelled_by": f"slack:{user_id}"}
        if fix:  # an engineer's words are stored redacted, as a verdict's fix is
            said = self.triager.redactor.redact(fix).text
            update["resolution"] = "\n".join(x for x in (said, inc.resolution) if x)
        labelled = inc.model_copy(update=update)
        self.history.upsert([labelled])
        log.info("history incident %s labelled by %s: %s", incident_id, user_id, merged)
        return labelled

    def retry_pending(self) -> int:
        """Write the pending tickets again (at most every `history_retry_s`); how many reached the history."""
        if time.monotonic() < self._next_retry:
            return 0
        self._next_retry = time.monotonic() + self.settings.history_retry_s
        written = 0
        for key in self.store.history_pending():
            inc = self.incident(key)
            if inc is None:
                self.store.update_ticket(key, history_pending=0)
            elif self._write(key, inc):
                written += 1
            else:
                break  # still down: the rest waits for the next round
        return written
