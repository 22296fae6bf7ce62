"""GenAI-serving fault scenarios: the default catalogue's signals around a ticket, generated with noise, daily
seasonality and scrape spikes, each with its ground truth (which signals moved and from when, the root cause, the
fix, the change that caused it if one did). `python -m evals.telemetry` runs the bot on them.

Each kind is a story an SRE would recognise, written from how the serving stack fails, not from any dataset:
- kv_cache: the KV cache fills, requests queue, vLLM preempts, then time to first token and timeouts climb;
- bad_model: a model rollout; the quality signals drop at the change, the infrastructure stays normal;
- config_error: a configuration change; the 5xx ratio jumps at it, latency stays normal;
- tenant_surge: one tenant's traffic x5; the queue grows, 429s rise;
- dependency: an upstream outage; errors rise, saturation stays normal;
- gpu_leak: GPU memory climbs for an hour, then out-of-memory errors;
- gpu_xid: Xid errors on one GPU of one node; errors rise a little, utilisation drops;
- normal: nothing wrong (spikes and daily drift only): what is flagged here is a false alarm.
Some instances carry a decoy: an unrelated deploy on the service within two hours (teams ship often), so the day-one
prior that a deploy is the cause is measured where it is wrong too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.models import ChangeEvent, ChangeKind, RecentChange, Ticket
from bot.telemetry.models import Point, Series, SignalRead, TelemetryRead

STEP_S = 30.0
BEFORE_MIN = 60.0  # telemetry_before_min's default
AFTER_MIN = 1.0  # the read ends when the first post is out, a minute after the ticket at most
SERVICE = "chat-api"


@dataclass(frozen=True)
class Baseline:
    level: float
    noise: float  # relative standard deviation
    season: float = 0.1  # relative amplitude of the daily cycle
    series: int = 1  # series per signal (GPUs, for DCGM's per-GPU gauges)


# The default catalogue's signals (taxonomies/signals.yaml) at a healthy level for a mid-sized vLLM service.
BASELINES: dict[str, Baseline] = {
    "kv_cache_usage": Baseline(0.5, 0.04),
    "requests_waiting": Baseline(3, 0.3),
    "preemptions": Baseline(0.02, 0.5),
    "ttft_p95": Baseline(0.4, 0.08),
    "generation_tokens": Baseline(5000, 0.05, 0.3),
    "gpu_utilization": Baseline(60, 0.05, 0.2),
    "gpu_memory_used": Baseline(60000, 0.01, 0.0),
    "gpu_xid_errors": Baseline(0, 0.0, 0.0, series=4),
    "request_rate": Baseline(200, 0.05, 0.3),
    "error_ratio": Baseline(0.003, 0.3),
    "throttled_ratio": Baseline(0.002, 0.3),
    "latency_p95": Baseline(1.2, 0.08),
    "eval_pass_ratio": Baseline(0.92, 0.015, 0.0),
    "thumbs_down_ratio": Baseline(0.04, 0.12),
}


@dataclass(frozen=True)
class Effect:
    """A signal leaving its level `lag` minutes after the fault, over `ramp` minutes: to `factor` x its level, or
    to `to` (a gauge that saturates). `series`: only that series of the signal (one GPU)."""

    signal: str
    lag: float = 0.0
    ramp: float = 1.0
    factor: float | None = None
    to: float | None = None
    series: int | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    titles: tuple[str, ...]
    texts: tuple[str, ...]
    effects: tuple[Effect, ...] = ()
    change: ChangeKind | None = None  # the change that caused it, landing just before the fault
    change_summary: str = ""
    root_cause: str = ""
    mitigation: str = ""
    symptom: str = ""
    decoy: float = 0.0  # chance of an unrelated deploy within two hours
    onset_min: tuple[float, float] = (8.0, 30.0)  # the fault, minutes before the ticket


KINDS: tuple[Kind, ...] = (
    Kind(
        "kv_cache",
        ("Slow responses on chat-api", "chat-api timeouts", "Long waits before the first token on chat-api"),
        ("Users report very slow answers and some timeouts.", "Requests hang for tens of seconds, some time out.",
         "Time to first token is way up for many users; some requests time out."),
        (Effect("kv_cache_usage", 0, 6, to=0.97), Effect("gpu_utilization", 0, 6, to=96),
         Effect("requests_waiting", 3, 3, factor=12), Effect("preemptions", 4, 2, factor=60),
         Effect("ttft_p95", 5, 3, factor=8), Effect("latency_p95", 5, 3, factor=4),
         Effect("error_ratio", 8, 2, factor=10)),
        root_cause="infrastructure", mitigation="scale_out", symptom="latency", decoy=0.3,
    ),
    Kind(
        "bad_model",
        ("Worse answers from chat-api", "chat-api quality complaints", "chat-api answers off-topic"),
        ("Customers say answers got worse: wrong facts and off-topic replies.",
         "Several reports of nonsensical or unhelpful responses in the last half hour.",
         "Answer quality dropped; users are thumbs-downing much more than usual."),
        (Effect("eval_pass_ratio", 1, 2, factor=0.72), Effect("thumbs_down_ratio", 3, 5, factor=4)),
        ChangeKind.MODEL, "chat-model v7 rollout", "deployment", "rollback", "quality_degradation",
    ),
    Kind(
        "config_error",
        ("Errors on chat-api", "chat-api 5xx", "chat-api failing requests"),
        ("A share of requests fails with 500s.", "Users get internal server errors on some requests.",
         "Error rate is elevated on chat completions."),
        (Effect("error_ratio", 0.5, 0.5, to=0.15),),
        ChangeKind.CONFIG, "router config: new upstream pool", "configuration", "config_change", "errors",
    ),
    Kind(
        "tenant_surge",
        ("chat-api rejecting requests", "429s on chat-api", "chat-api overloaded"),
        ("Many requests are rejected with 429 Too Many Requests.", "Customers hit rate limits they never hit.",
         "Requests are being throttled and queued."),
        (Effect("request_rate", 0, 5, factor=5), Effect("generation_tokens", 0, 5, factor=4),
         Effect("kv_cache_usage", 1, 5, to=0.92), Effect("gpu_utilization", 1, 4, to=97),
         Effect("requests_waiting", 2, 3, factor=8), Effect("throttled_ratio", 2, 2, to=0.2),
         Effect("latency_p95", 3, 3, factor=2)),
        root_cause="external_traffic", mitigation="load_shed", symptom="throttling_capacity", decoy=0.3,
    ),
    Kind(
        "dependency",
        ("Errors on chat-api", "chat-api requests failing", "chat-api 502s"),
        ("Some requests fail with 502 and 504.", "Errors when answering with retrieval; plain chat works.",
         "Users see intermittent failures."),
        (Effect("error_ratio", 0, 1, to=0.08),),
        root_cause="third_party", mitigation="traffic_shift", symptom="errors", decoy=0.3,
    ),
    Kind(
        "gpu_leak",
        ("chat-api errors", "chat-api requests failing", "Errors on chat-api"),
        ("Requests started failing on chat-api.", "Out of memory errors in the serving logs.",
         "A share of requests fails; it got worse over the last minutes."),
        (Effect("gpu_memory_used", -40, 45, to=79500), Effect("error_ratio", 3, 1, to=0.12)),
        root_cause="code_bug", mitigation="restart", symptom="errors", decoy=0.3, onset_min=(4.0, 8.0),
    ),
    Kind(
        "gpu_xid",
        ("chat-api errors", "Errors on chat-api", "chat-api failing requests"),
        ("A share of requests fails with 500s.", "Errors on some requests, others are fine.",
         "Some users get errors, retries usually work."),
        (Effect("gpu_xid_errors", 0, 0.5, to=79, series=2), Effect("error_ratio", 1, 1, factor=12),
         Effect("gpu_utilization", 1, 1, factor=0.72)),
        root_cause="infrastructure", mitigation="infra_repair", symptom="errors", decoy=0.3,
    ),
    Kind(
        "normal",
        ("chat-api slow?", "Possible errors on chat-api", "chat-api: user report"),
        ("One user reports a slow answer.", "A customer saw one error.", "Someone says responses feel slow."),
        decoy=0.5,
    ),
)  # fmt: skip


@dataclass
class Scenario:
    kind: Kind
    ticket: Ticket
    read: TelemetryRead
    changes: list[RecentChange]
    moved: dict[str, datetime] = field(default_factory=dict)  # truth: signal -> when it started to move

    @property
    def first(self) -> set[str]:
        """The signals that moved first (within a minute of the earliest): what the post should list first."""
        if not self.moved:
            return set()
        t0 = min(self.moved.values())
        return {s for s, t in self.moved.items() if t - t0 <= timedelta(minutes=1)}


def _clock(n: int) -> datetime:
    return datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(hours=7 * n)


def generate(kind: Kind, n: int, seed: int = 0) -> Scenario:
    """The `n`th instance of a kind: its levels, fault time, lags and sizes drawn around the kind's story."""
    rng = random.Random(f"{seed}:{kind.name}:{n}")
    at = _clock(n) + timedelta(minutes=rng.uniform(0, 400))
    start, end = at - timedelta(minutes=BEFORE_MIN), at + timedelta(minutes=AFTER_MIN)
    fault = at - timedelta(minutes=rng.uniform(*kind.onset_min))
    times = [
        start + timedelta(seconds=STEP_S * i) for i in range(int((end - start).total_seconds() / STEP_S) + 1)
    ]
    phase = rng.uniform(0, 86400)
    # How hard the fault hits: from a third of the story's size (a subtle instance) to all of it.
    intensity = rng.uniform(0.35, 1.0)
    truth: dict[str, datetime] = {}
    reads = []
    for name, base in BASELINES.items():
        level = base.level * rng.uniform(0.8, 1.2)
        effects = [e for e in kind.effects if e.signal == name]
        series = []
        for s in range(base.series):
            values = []
            for t in times:
                day = 1 + base.season * math.sin(2 * math.pi * (t.timestamp() + phase) / 86400)
                v = level * day * (1 + rng.gauss(0, base.noise))
                for e in effects:
                    if e.series is not None and e.series != s:
                        continue
                    begin = fault + timedelta(minutes=e.lag)
                    if t >= begin:
                        share = min(1.0, (t - begin).total_seconds() / 60 / max(e.ramp, 1e-9))
                        full = e.to if e.to is not None else level * day * (e.factor or 1.0)
                        target = level * day + intensity * (full - level * day)
                        size = rng.uniform(0.9, 1.1)
                        noisy = target * size * (1 + rng.gauss(0, min(base.noise, 0.05)))
                        v = v + share * (noisy - v)
                if base.level and rng.random() < 0.01:  # a scrape blip
                    v *= rng.uniform(2, 4)
                values.append(max(v, 0.0))
            series.append(Series(labels={"gpu": str(s)} if base.series > 1 else {},
                                 points=[Point(at=t, value=v) for t, v in zip(times, values, strict=True)]))  # fmt: skip
        for (
            e
        ) in effects:  # moved, for the truth, if it had 2.5 minutes (the detector's 5 points) before the end
            begin = fault + timedelta(minutes=e.lag)
            if begin <= end - timedelta(minutes=2.5):
                truth[name] = min(truth.get(name, begin), max(begin, start))
        reads.append(SignalRead(signal=name, query=f"{name}{{service={SERVICE!r}}}", series=series))
    changes = []
    if kind.change is not None:
        landed = fault - timedelta(minutes=rng.uniform(0.5, 4))
        changes.append(_change(kind.change, kind.change_summary, landed, at, f"{kind.name}-{n}"))
    if rng.random() < kind.decoy:  # an unrelated deploy: most deploys cause nothing
        landed = at - timedelta(minutes=rng.uniform(5, 110))
        changes.append(_change(ChangeKind.DEPLOY, "web-ui v3.12.0", landed, at, f"decoy-{kind.name}-{n}"))
    ticket = Ticket(id=f"scenario-{kind.name}-{n}", title=rng.choice(kind.titles), text=rng.choice(kind.texts),
                    service=SERVICE, created_at=at)  # fmt: skip
    read = TelemetryRead(
        selector=f'{{service="{SERVICE}"}}', start=start, end=end, step_s=STEP_S, signals=reads
    )
    changes.sort(key=lambda r: r.change.at, reverse=True)
    return Scenario(kind=kind, ticket=ticket, read=read, changes=changes, moved=truth)


def _change(kind: ChangeKind, summary: str, landed: datetime, ticket_at: datetime, cid: str) -> RecentChange:
    change = ChangeEvent(id=cid, service=SERVICE, kind=kind, summary=summary, at=landed)
    return RecentChange(change=change, minutes_before=round((ticket_at - landed).total_seconds() / 60, 1))


def suite(per_kind: int, seed: int = 0, kinds: tuple[Kind, ...] = KINDS) -> list[Scenario]:
    return [generate(k, n, seed) for k in kinds for n in range(per_kind)]
