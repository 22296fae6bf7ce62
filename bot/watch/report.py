"""A report a manager can read: how much the bot triaged, how often engineers accepted it, what it costs.

`build` computes the figures from the database (the same verdict judgments as the monitor and `/metrics`);
`write` renders them as markdown with PNG plots (`incibot report`); the Slack Home tab shows the same figures
(`bot/delivery/slack/blocks.py:home_view`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from bot.clock import utcnow
from bot.store.sql import Store
from bot.watch.metrics import draft_cost
from bot.watch.quality import acceptance, confident_precision, field_verdicts

# A terminal triage (`incibot triage`, `incibot demo`) stores nothing: the database it would be recorded in is
# the bot's, which it never creates, and a try-out with no verdict to follow would count against acceptance.
NOT_RECORDED = "CLI triages are not recorded; only tickets the bot served are counted"


class ReportError(ValueError):
    """A report that cannot be made as asked (one line on the command line)."""


class FieldAcceptance(BaseModel):
    field: str
    model: str
    n: int
    rate: float | None


class Report(BaseModel):
    since: datetime
    until: datetime
    triages: int
    triages_per_day: dict[date, int]
    verdicts: dict[str, int]  # confirm / correct / reject
    acceptance: list[FieldAcceptance]
    acceptance_per_day: dict[str, dict[date, float]]  # field -> day -> rate
    confident_at: float
    confident_n: int
    confident_precision: float | None
    corrections: list[tuple[str, str, str, int]]  # field, drafted, corrected to, count (most first)
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens_per_triage: float | None
    cost_per_triage: float | None  # None: unknown (a model without a price), never 0 by default
    cost_per_accepted: float | None
    unpriced_models: list[str]


def parse_since(text: str) -> timedelta:
    """`7d`, `24h`, `90m`."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError):
        raise ReportError(f"--since takes a number and d, h or m (7d, 24h): not {text!r}") from None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def build(
    store: Store, since: timedelta, prices: dict[str, tuple[float, float]], confident_at: float
) -> Report:
    until = utcnow()
    start = until - since
    drafts = store.watch.drafts_since(start)
    verdicts = store.watch.verdicts(since=start)
    fields = field_verdicts(verdicts)
    per_day: dict[str, dict[date, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for f in fields:
        cell = per_day[f.field][f.created_at.date()]
        cell[0] += 1
        cell[1] += int(f.accepted)
    corrections = Counter((f.field, f.drafted, f.corrected_to) for f in fields if f.corrected_to)
    sure = confident_precision(fields, confident_at)
    called = [d for d in drafts if d.llm.status != "skipped"]
    unpriced = sorted({d.llm.model for d in called if d.llm.model not in prices})
    costs = [c for d in called if (c := draft_cost(d, prices)) is not None]
    total_cost = None if unpriced else sum(costs)
    accepted = sum(1 for v in verdicts if v.action == "confirm")
    return Report(
        since=start,
        until=until,
        triages=len(drafts),
        triages_per_day=dict(sorted(Counter(d.created_at.date() for d in drafts).items())),
        verdicts=dict(Counter(v.action for v in verdicts)),
        acceptance=[
            FieldAcceptance(field=f, model=m, n=r.n, rate=r.value) for (f, m), r in acceptance(fields).items()
        ],
        acceptance_per_day={
            f: {d: a / n for d, (n, a) in sorted(days.items())} for f, days in per_day.items()
        },
        confident_at=confident_at,
        confident_n=sure.n,
        confident_precision=sure.value,
        corrections=[(f, a, b or "", n) for (f, a, b), n in corrections.most_common(15)],
        latency_p50_s=_pct([d.latency_s for d in drafts], 0.5),
        latency_p95_s=_pct([d.latency_s for d in drafts], 0.95),
        tokens_per_triage=(sum(d.llm.prompt_tokens + d.llm.completion_tokens for d in called) / len(called))
        if called
        else None,
        cost_per_triage=total_cost / len(drafts) if total_cost is not None and drafts else None,
        cost_per_accepted=total_cost / accepted if total_cost is not None and accepted else None,
        unpriced_models=unpriced,
    )


def _num(x: float | None, fmt: str = "{:.2f}", unknown: str = "n/a") -> str:
    return unknown if x is None else fmt.format(x)


def markdown(r: Report) -> str:
    cost = "unknown (no price for " + ", ".join(r.unpriced_models) + ")" if r.unpriced_models else None
    lines = [
        f"# incibot report, {r.since:%Y-%m-%d %H:%M} to {r.until:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Triages: **{r.triages}**; verdicts: "
        + (", ".join(f"{k} {v}" for k, v in sorted(r.verdicts.items())) or "none")
        + f" ({NOT_RECORDED})",
        f"- Labels called confident (>= {r.confident_at:.0%}) that engineers kept: "
        f"**{_num(r.confident_precision, '{:.0%}')}** of {r.confident_n}",
        f"- Triage latency: p50 {_num(r.latency_p50_s)} s, p95 {_num(r.latency_p95_s)} s",
        f"- Tokens per triage (LLM calls): {_num(r.tokens_per_triage, '{:.0f}')}",
        f"- Cost per triage: {cost or _num(r.cost_per_triage, '${:.4f}')}; per accepted draft: "
        f"{cost or _num(r.cost_per_accepted, '${:.4f}')}",
        "",
        "## Acceptance by field and model",
        "",
        "| field | model | verdicts | accepted |",
        "|---|---|---|---|",
        *(f"| {a.field} | {a.model} | {a.n} | {_num(a.rate, '{:.0%}')} |" for a in r.acceptance),
        "",
        "## Labels engineers corrected most",
        "",
        "| field | drafted | corrected to | times |",
        "|---|---|---|---|",
        *(f"| {f} | {a} | {b} | {n} |" for f, a, b, n in r.corrections),
        "",
        "![triages per day](triages.png)",
        "![acceptance per field](acceptance.png)",
        "",
    ]
    return "\n".join(lines)


def write(r: Report, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(r))
    fig, ax = plt.subplots(figsize=(7, 3))
    days = list(r.triages_per_day)
    ax.bar([d.isoformat() for d in days], list(r.triages_per_day.values()), color="#4a7")
    ax.set_title("Triages per day")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out / "triages.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3))
    for field, per in r.acceptance_per_day.items():
        ax.plot([d.isoformat() for d in per], list(per.values()), marker="o", label=field)
    ax.set_ylim(0, 1.05)
    ax.set_title("Acceptance of the drafted label, per field and day")
    if r.acceptance_per_day:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "acceptance.png", dpi=100)
    plt.close(fig)
    return [out / "report.md", out / "triages.png", out / "acceptance.png"]
