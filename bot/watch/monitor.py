"""The bot watches itself: one alert in the ops channel when its drafts get worse, one message when they recover.

Two signals, each over a rolling window: acceptance of the drafted label per field and model (engineers'
verdicts, `bot/watch/quality.py`), and the share of LLM calls that failed (invalid, rejected by validation,
unavailable, timed out, breaker open) per model. An alert opens when a signal crosses its threshold over at
least `quality_min_verdicts` verdicts (or `llm_failure_min_calls` calls) and closes when it is back past a
second, safer threshold (hysteresis): one alert per episode, however many verdicts arrive. Episodes are stored
in the database and opened with a conditional update, so several replicas post one alert between them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from bot.config import Settings
from bot.store.sql import Store
from bot.watch.quality import Rate, acceptance, field_verdicts

log = logging.getLogger("incibot")
FAILED = ("invalid", "rejected", "unavailable")
MONITOR_EVENT = "incibot_monitor"


class Poster(Protocol):
    """Where alerts go (delivery's Slack messages, handed in by the composition root)."""

    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], metadata: dict[str, Any]
    ) -> Any: ...


class QualityMonitor:
    def __init__(self, settings: Settings, store: Store, slack: Poster) -> None:
        self.s, self.store, self.slack = settings, store, slack
        self._lock = threading.Lock()  # one check at a time per replica (the database arbitrates replicas)

    def check(self) -> list[str]:
        """Evaluate both signals now; post what changed. Returns the messages posted."""
        with self._lock:
            posted = []
            for name, breached, recovered, say in [*self._acceptance(), *self._failures()]:
                message = None
                if breached and self.store.watch.set_alert(name, True, say):
                    message = f":rotating_light: *incibot quality alert*: {say}"
                elif recovered and self.store.watch.set_alert(name, False, say):
                    message = f":white_check_mark: *incibot recovered*: {say}"
                if message is not None:
                    # The episode is stored; an unposted message is logged, never retried forever.
                    try:
                        self.slack.post(self.s.ops_channel or self.s.default_channel, message,
                                        [{"type": "section", "text": {"type": "mrkdwn", "text": message}}],
                                        {"event_type": MONITOR_EVENT, "event_payload": {"alert": name}})  # fmt: skip
                    except Exception:
                        log.exception("could not post the monitor message %r", message)
                    posted.append(message)
            return posted

    def _acceptance(self) -> list[tuple[str, bool, bool, str]]:
        """Per model: breached when any field's acceptance is below the threshold, recovered when every field
        with enough verdicts is back at the recovery level (one episode per model, naming the fields)."""
        fields = field_verdicts(self.store.watch.verdicts(limit=self.s.quality_window))
        by_model: dict[str, list[tuple[str, float, int]]] = {}
        for (field, model), rate in acceptance(fields).items():
            if rate.n >= self.s.quality_min_verdicts and rate.value is not None:
                by_model.setdefault(model, []).append((field, rate.value, rate.n))
        out = []
        for model, rates in sorted(by_model.items()):
            low = [(f, v, n) for f, v, n in rates if v < self.s.quality_alert_below]
            shown = low or rates
            say = (
                f"drafts by `{model}`: "
                + "; ".join(f"*{f}* accepted {v:.0%} of the last {n} verdicts" for f, v, n in shown)
                + (
                    f" (alert below {self.s.quality_alert_below:.0%}, recovered at {self.s.quality_recover_at:.0%})"
                )
            )
            recovered = all(v >= self.s.quality_recover_at for _, v, _ in rates)
            out.append((f"acceptance:{model}", bool(low), recovered, say))
        return out

    def _failures(self) -> list[tuple[str, bool, bool, str]]:
        by_model: dict[str, Rate] = {}
        for d in self.store.watch.recent_drafts(limit=self.s.llm_failure_window):
            if d.llm.status == "skipped":
                continue
            r = by_model.setdefault(d.llm.model, Rate(n=0, accepted=0))
            r.n += 1
            r.accepted += int(d.llm.status in FAILED)  # here: failures
        out = []
        for model, r in sorted(by_model.items()):
            if r.n < self.s.llm_failure_min_calls or r.value is None:
                continue
            say = (
                f"`{model}` failed {r.value:.0%} of the last {r.n} LLM calls (alert above "
                f"{self.s.llm_failure_alert_above:.0%}, recovered below {self.s.llm_failure_recover_below:.0%})"
            )
            out.append((f"llm_failures:{model}", r.value > self.s.llm_failure_alert_above,
                        r.value < self.s.llm_failure_recover_below, say))  # fmt: skip
        return out
