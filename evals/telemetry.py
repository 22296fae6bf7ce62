"""The metrics as evidence, measured on the scenario suite (evals/scenarios.py): what moved, and what it does to the
decision, on day one and after verdicts.

`python -m evals.telemetry [--per-kind 20] [--seed 0] [--verdicts 0.5] [--out DIR]`

1. What moved: each scenario's read goes through the bot's own summary (`bot.telemetry.summarize`: the change-point
   detector and the default catalogue), as a ticket's read from Prometheus does after the HTTP call (that call is
   tested against a real Prometheus in tests/telemetry and timed by `incibot bench telemetry`). Per kind: precision
   and recall of the moved signals against the truth, whether the post's first line is a signal that moved first,
   the median onset error; on the normal kind, the share of series flagged (false signals).
2. The decision: the bot as installed (default taxonomy, bundled demo history, the shipped evidence priors), LLM
   off (the first post), each ticket through `Triager.triage` with its context as the bot builds it (recent changes,
   the metrics' summary). Root cause and mitigation top-1 / top-3, per kind, with: the ticket's text alone; + the
   recent changes; + the metrics; + both. "Day one" is the priors alone. "After verdicts": the first half of each
   kind's instances is replayed as engineers' verdicts (the true root cause, symptom and what fixed it, through
   `Triager.record_verdict`), then the second half is decided; then those tickets are also learned as history
   with their labels and the classifier retrained, as the bot does with a verdict. Day one is reported on that same
   second half.
3. Latency of the telemetry stage's summary per ticket (p50 / p95).

Honest limits: the scenarios are generated (their stories are written from how vLLM serving fails, not fitted to
any dataset), the ticket texts are short and generic on purpose (the metrics have to do the work), and the demo
history labels only some root causes: a cause it never saw cannot be the classifier's top-1 whatever the evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from evals.scenarios import Scenario, suite

if TYPE_CHECKING:
    from bot.models import Context, HistoricalIncident, TelemetrySummary, TriageDraft
    from bot.triage.pipeline import Triager

VARIANTS = ("text", "changes", "metrics", "both")


def detection(scenarios: list[Scenario], summaries: list[TelemetrySummary]) -> dict[str, dict[str, float]]:
    """Per kind: precision, recall, first-line right, median onset error (min); normal: false-signal rate."""
    out: dict[str, dict[str, float]] = {}
    by_kind: dict[str, list[tuple[Scenario, TelemetrySummary]]] = defaultdict(list)
    for sc, su in zip(scenarios, summaries, strict=True):
        by_kind[sc.kind.name].append((sc, su))
    for kind, pairs in by_kind.items():
        tp = fp = fn = first_right = with_moved = 0
        errors: list[float] = []
        flagged = total = 0
        for sc, su in pairs:
            got = {m.signal: m.onset for m in su.moved}
            truth = sc.moved
            tp += len(got.keys() & truth.keys())
            fp += len(got.keys() - truth.keys())
            fn += len(truth.keys() - got.keys())
            errors += [abs((got[s] - truth[s]).total_seconds()) / 60 for s in got.keys() & truth.keys()]
            if truth and su.moved:
                with_moved += 1
                first_right += su.moved[0].signal in sc.first
            flagged += len(got)
            total += sum(len(r.series) for r in sc.read.signals)
        row = {"instances": len(pairs)}
        if kind == "normal":
            row |= {
                "false_signal_rate": flagged / total if total else 0.0,
                "flagged": flagged,
                "series": total,
            }
        else:
            row |= {
                "precision": tp / (tp + fp) if tp + fp else 1.0,
                "recall": tp / (tp + fn) if tp + fn else 1.0,
                "first_line_right": first_right / with_moved if with_moved else 0.0,
                "onset_error_min_p50": statistics.median(errors) if errors else 0.0,
            }
        out[kind] = row
    return out


def _context(sc: Scenario, summary: TelemetrySummary, variant: str, window_min: float) -> Context | None:
    from bot.models import Context

    if variant == "text":
        return None
    changes = sc.changes if variant in ("changes", "both") else []
    telemetry = summary if variant in ("metrics", "both") else None
    return Context(service=sc.ticket.service, window_min=window_min, changes=changes, telemetry=telemetry)


def _ranks(draft: TriageDraft) -> tuple[list[str], list[str]]:
    rc = draft.labels["root_cause"]
    causes = list(dict.fromkeys([rc.label, *rc.candidates]))[:3]
    m = draft.mitigation
    actions = list(m.candidates or [h.action for h in m.hypotheses])[:3] if m is not None else []
    return causes, actions


def decisions(
    tri: Triager,
    scenarios: list[Scenario],
    summaries: list[TelemetrySummary],
    window_min: float,
    share: float,
) -> dict[str, dict[str, dict[str, float]]]:
    """stage ("day one", "after verdicts") -> kind -> "<variant> rc@1" ... for the held-out half of each kind."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, sc in enumerate(scenarios):
        if sc.kind.root_cause:
            by_kind[sc.kind.name].append(i)
    taught = {i for idx in by_kind.values() for i in idx[: int(len(idx) * share)]}
    held = {k: [i for i in idx if i not in taught] for k, idx in by_kind.items()}

    def score(stage: str) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for kind, idx in held.items():
            row: dict[str, float] = {}
            for variant in VARIANTS:
                hits = defaultdict(int)
                for i in idx:
                    sc = scenarios[i]
                    draft = tri.triage(sc.ticket, context=_context(sc, summaries[i], variant, window_min))
                    causes, actions = _ranks(draft)
                    hits["rc@1"] += causes[:1] == [sc.kind.root_cause]
                    hits["rc@3"] += sc.kind.root_cause in causes
                    hits["fix@1"] += actions[:1] == [sc.kind.mitigation]
                    hits["fix@3"] += sc.kind.mitigation in actions
                row |= {f"{variant} {k}": v / len(idx) for k, v in hits.items()}
            table[kind] = row
        return table

    out = {"day one": score("day one")}
    if taught:
        for i in sorted(
            taught
        ):  # the engineers' verdicts, in ticket order, on drafts that had every evidence
            sc = scenarios[i]
            draft = tri.triage(sc.ticket, context=_context(sc, summaries[i], "both", window_min))
            gold = {"root_cause": [sc.kind.root_cause], "symptom": [sc.kind.symptom],
                    "mitigation": [sc.kind.mitigation]}  # fmt: skip
            tri.record_verdict(draft, gold)
        out[f"after {len(taught)} verdicts"] = score("after")
        # ... and, as the bot does with a verdict (bot/feedback/history_feeder.py), the labelled tickets become
        # history: retrieval finds them and the classifier is retrained with their labels
        tri.history.upsert([_learned(scenarios[i]) for i in sorted(taught)])
        tri.trainer.train_now()
        out[f"after {len(taught)} verdicts, learned as history"] = score("learned")
    return out


def _learned(sc: Scenario) -> HistoricalIncident:
    from bot.models import HistoricalIncident

    k = sc.kind
    return HistoricalIncident(**sc.ticket.model_dump(exclude={"raw"}), resolution="",
                              labels={"root_cause": [k.root_cause], "symptom": [k.symptom],
                                      "mitigation": [k.mitigation]})  # fmt: skip


def _table(rows: dict[str, dict[str, float]], columns: list[str], fmt: Callable[[float], str]) -> str:
    head = "| kind | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns)
    body = [
        "| " + k + " | " + " | ".join(fmt(r.get(c, float("nan"))) for c in columns) + " |"
        for k, r in rows.items()
    ]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=20, help="Instances per scenario kind (default 20).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--verdicts", type=float, default=0.5, help="Share of each kind replayed as verdicts (0.5)."
    )
    ap.add_argument("--no-decision", action="store_true", help="Only what moved (no classifier, seconds).")
    ap.add_argument("--out", type=Path, help="Write metrics.json and summary.md there.")
    args = ap.parse_args(argv)
    os.environ.setdefault("INCIBOT_DATA_DIR", tempfile.mkdtemp(prefix="telemetry-eval-"))

    from bot.config import Settings
    from bot.telemetry import Catalogue, summarize

    settings = Settings(seed_demo_history=False)
    catalogue = Catalogue.load(settings.signals_path)
    scenarios = suite(args.per_kind, args.seed)
    summaries, took = [], []
    for sc in scenarios:
        t0 = time.perf_counter()
        summaries.append(summarize(sc.read, catalogue, sc.ticket.created_at))
        took.append((time.perf_counter() - t0) * 1000)
    took.sort()
    latency = {"p50_ms": statistics.median(took), "p95_ms": took[int(0.95 * (len(took) - 1))],
               "signals_per_read": len(sc.read.signals)}  # fmt: skip
    moved = detection(scenarios, summaries)
    pct = lambda x: f"{x:.0%}"  # noqa: E731
    lines = [
        f"# Metrics as evidence: {len(scenarios)} scenarios ({args.per_kind} per kind, seed {args.seed})",
        "",
        "## What moved (bot.telemetry.summarize on each read)",
        "",
        _table(
            {k: r for k, r in moved.items() if k != "normal"},
            ["precision", "recall", "first_line_right", "onset_error_min_p50"],
            lambda x: f"{x:.2f}",
        ),
        "",
        f"normal: {moved['normal']['flagged']:.0f} of {moved['normal']['series']:.0f} series flagged "
        f"(false-signal rate {moved['normal']['false_signal_rate']:.1%})",
        "",
        f"summary latency per ticket: p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms "
        f"({latency['signals_per_read']} signals, {int(60 / 0.5) + 3} points each)",
    ]
    result: dict[str, object] = {"detection": moved, "latency": latency}
    if not args.no_decision:
        tri = _triager(settings)
        decided = decisions(tri, scenarios, summaries, settings.change_window_min, args.verdicts)
        result["decision"] = decided
        for stage, table in decided.items():
            for target in ("rc", "fix"):
                cols = [f"{v} {target}@{k}" for v in VARIANTS for k in (1, 3)]
                name = "root cause" if target == "rc" else "mitigation"
                lines += ["", f"## {name} top-1 / top-3, {stage} (held-out half)", "",
                          _table(table, cols, pct)]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
        (args.out / "summary.md").write_text(text + "\n")
    return result


def _triager(settings: object) -> Triager:
    """The bot as installed: the bundled demo history, the shipped priors, LLM off."""
    from bot.store.demo import demo_history
    from bot.store.factory import open_history
    from bot.triage.pipeline import Triager

    store = open_history(settings)  # type: ignore[arg-type]
    store.upsert(demo_history())
    tri = Triager.from_settings(settings, store, train_now=True)  # type: ignore[arg-type]
    tri.model, tri.drafter = None, None
    return tri


if __name__ == "__main__":
    main()
