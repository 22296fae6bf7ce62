"""Prometheus metrics, served at `/metrics` in the exposition format every monitoring stack reads.

Each replica counts what it did itself (latency histograms, LLM calls by outcome, tokens, estimated cost):
sum them across replicas in PromQL. What must be fleet-wide (tickets by state, the queue's depth and oldest
age, verdicts, the drafting mode) is read from the database at scrape time, so every replica reports the same
numbers and a restart loses none. A scrape takes no lock the posting path holds: it reads on its own
connection.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.clock import utcnow
from bot.config import Settings
from bot.models import TriageDraft
from bot.store.sql import Store
from bot.watch.quality import acceptance, confident_precision, field_verdicts

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def known_prices(settings: Settings) -> dict[str, tuple[float, float]]:
    """`llm_prices`, and the bundled model at no cost in dollars (it runs on the bot's own CPU)."""
    prices = dict(settings.llm_prices)
    if settings.llm_backend == "local":
        from bot.triage.llm import model_server_config

        prices.setdefault(model_server_config(settings).alias, (0.0, 0.0))
    return prices


def draft_cost(draft: TriageDraft, prices: dict[str, tuple[float, float]]) -> float | None:
    """Estimated dollars of a draft's LLM call; None if the model has no price (unknown, never 0)."""
    price = prices.get(draft.llm.model)
    if price is None:
        return None
    return draft.llm.prompt_tokens / 1000 * price[0] + draft.llm.completion_tokens / 1000 * price[1]


def llm_outcome(draft: TriageDraft) -> str | None:
    """ok, repaired, invalid, rejected (by validation), timeout, breaker_open or error; None: no LLM call."""
    u = draft.llm
    if u.status == "skipped":
        return None
    if u.status != "unavailable":
        return u.status
    error = (u.error or "").lower()
    if error.startswith("circuit open"):
        return "breaker_open"
    return "timeout" if "timeout" in error or "timed out" in error else "error"


class _Fleet(Collector):
    """Fleet-wide figures from the database, at scrape time."""

    def __init__(self, store: Store, mode: object, window: int, confident_at: float) -> None:
        self.store, self.mode, self.window, self.confident_at = store, mode, window, confident_at

    def collect(self) -> Iterator[Metric]:
        states = GaugeMetricFamily("incibot_tickets", "Tickets by state, all replicas", labels=["state"])
        for state, n in sorted(self.store.counts().items()):
            states.add_metric([state], n)
        yield states
        stats = self.store.watch.queue_stats()
        yield CounterMetricFamily(
            "incibot_tickets_accepted", "Tickets accepted, all replicas", value=stats.accepted
        )
        yield GaugeMetricFamily("incibot_queue_depth", "Tickets waiting to be posted", value=stats.waiting)
        age = (utcnow() - stats.oldest).total_seconds() if stats.oldest else 0.0
        yield GaugeMetricFamily(
            "incibot_queue_oldest_age_seconds", "Age of the oldest waiting ticket", value=age
        )
        verdicts = CounterMetricFamily(
            "incibot_feedback", "Engineer verdicts, all replicas", labels=["verdict"]
        )
        for verdict, n in sorted(self.store.watch.feedback_counts().items()):
            verdicts.add_metric([verdict], n)
        yield verdicts
        rates = GaugeMetricFamily("incibot_acceptance_ratio", "Drafted labels engineers kept, over the latest "
                                  "verdicts (the monitor's signal)", labels=["field", "model"])  # fmt: skip
        window = GaugeMetricFamily("incibot_acceptance_verdicts", "Verdicts behind incibot_acceptance_ratio",
                                   labels=["field", "model"])  # fmt: skip
        judged = field_verdicts(self.store.watch.verdicts(limit=self.window))
        for (field, model), rate in acceptance(judged).items():
            if rate.value is not None:
                rates.add_metric([field, model], rate.value)
                window.add_metric([field, model], rate.n)
        yield rates
        yield window
        sure = confident_precision(judged, self.confident_at)
        if sure.value is not None:
            yield GaugeMetricFamily("incibot_confident_precision_ratio", "Labels called confident that engineers "
                                    "kept, over the latest verdicts", value=sure.value)  # fmt: skip
        current = getattr(self.mode, "mode", None)
        if current is not None:
            gauge = GaugeMetricFamily("incibot_mode", "Drafting mode in force (1)", labels=["mode"])
            gauge.add_metric([str(current)], 1)
            yield gauge


class Metrics:
    def __init__(
        self,
        store: Store,
        prices: dict[str, tuple[float, float]],
        mode: object = None,
        window: int = 50,
        confident_at: float = 0.6,
    ) -> None:
        self.prices = prices  # model -> (USD per 1k prompt tokens, per 1k completion tokens)
        self.registry = CollectorRegistry()
        r = self.registry
        self.first_post = Histogram("incibot_first_post_seconds", "Webhook accepted -> first Slack post",
                                    buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.llm_edit = Histogram("incibot_llm_edit_seconds", "Webhook accepted -> post edited with the LLM draft",
                                  buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.llm_calls = Counter(
            "incibot_llm_calls", "LLM calls by outcome", ["model", "outcome"], registry=r
        )
        self.tokens = Counter("incibot_llm_tokens", "LLM tokens", ["model", "direction"], registry=r)
        self.cost = Counter(
            "incibot_llm_cost_dollars", "Estimated LLM cost (priced models)", ["model"], registry=r
        )
        self.unpriced = Counter("incibot_llm_unpriced_calls", "LLM calls of models with no price: cost unknown",
                                ["model"], registry=r)  # fmt: skip
        r.register(_Fleet(store, mode, window, confident_at))

    def observe_draft(self, draft: TriageDraft) -> None:
        outcome = llm_outcome(draft)
        if outcome is None:
            return
        u = draft.llm
        self.llm_calls.labels(u.model, outcome).inc()
        self.tokens.labels(u.model, "in").inc(u.prompt_tokens)
        self.tokens.labels(u.model, "out").inc(u.completion_tokens)
        if (cost := self.cost_of(draft)) is None:
            self.unpriced.labels(u.model).inc()
        else:
            self.cost.labels(u.model).inc(cost)

    def cost_of(self, draft: TriageDraft) -> float | None:
        return draft_cost(draft, self.prices)

    def render(self) -> bytes:
        return generate_latest(self.registry)
