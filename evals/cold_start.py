"""Cold start: the replay as if only N of the history's incidents carried labels, chosen by active learning or at
random, for learning curves per dataset and field (`incibot eval --label-budget 10,20,50,all`).

The labels are chosen once, from the incidents whose outcome was known when the first case opened (the harness's
`Replay` rule: nothing later is seen, not even unlabelled), by the engineer's session the strategy simulates: the
dataset's own labels are the engineer's answers. Every other record stays in the history without labels, for
retrieval. No labels accrue during the replay (verdicts on the cases only reach the LLM's tally), so `all` is every
label known at the first case: the curve's ceiling, measured under the same rule as its points. The classifier is
trained and decides through the harness, so through the bot's own trainer and decision.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.config import Settings
from bot.intake.files import InputError
from bot.triage.active import STRATEGIES, active_order
from evals.cases import EvalConfig, Replay
from evals.datasets import Dataset
from evals.harness import eval_store, run_eval, select_cases

ALL = "all"
BATCH = 10  # incidents an engineer labels between two retrainings of the simulated session
METHOD = "classifier"  # the product's decision without the LLM: what the labels train


def parse_budgets(text: str) -> list[int | str]:
    """`10,20,50,all` -> [10, 20, 50, "all"], in increasing order."""
    out: list[int | str] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part == ALL:
            out.append(ALL)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise InputError(f"--label-budget {text!r}: give whole numbers above 0 or 'all', comma separated")
    if not out:
        raise InputError("--label-budget needs at least one number or 'all'")
    nums = sorted({b for b in out if isinstance(b, int)})
    return [*nums, *([ALL] if ALL in out else [])]


def parse_strategies(text: str) -> list[str]:
    out = list(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [s for s in out if s not in STRATEGIES]
    if bad or not out:
        raise InputError(f"--label-strategy {text!r}: use {' or '.join(STRATEGIES)}, comma separated")
    return out


def labelling_order(
    ds: Dataset, settings: Settings, cfg: EvalConfig, strategy: str, n: int, seed: int = 0
) -> tuple[list[str], int]:
    """The ids the strategy has the engineer label, in the order asked (at most n), and the size of the pool it
    chose from: the records known when the first case opened, with text."""
    s = settings.model_copy(update={"retrieval_k": cfg.k})
    if cfg.unresolved_delay_h is not None:
        s = s.model_copy(update={"unresolved_visible_after_h": cfg.unresolved_delay_h})
    replay = Replay(cfg.visibility, timedelta(hours=s.unresolved_visible_after_h))
    first = select_cases(ds, cfg.test_fraction, cfg.limit, cfg.split, cfg.validation_fraction)[0]
    incs, vecs = eval_store(ds, s).all()
    seen = [j for j, i in enumerate(incs) if replay.known(i, first.created_at)]
    history, vectors = [incs[j] for j in seen], vecs[seen]
    pool = [r for r, i in enumerate(history) if i.body.strip()]
    if strategy == "random":
        rows = list(pool)
        random.Random(seed).shuffle(rows)  # a shuffle, so a smaller budget is a prefix of a larger one
        rows = rows[:n]
    else:
        fields = list(ds.taxonomy.fields)
        rows = active_order(history, vectors, ds.taxonomy, fields, pool, n,
                            lambda r: history[r].labels, batch=BATCH, seed=seed)  # fmt: skip
    return [history[r].id for r in rows], len(pool)


def run_cold_start(
    ds: Dataset,
    settings: Settings,
    cfg: EvalConfig,
    budgets: list[int | str],
    strategies: list[str],
    console: Console | None = None,
    seeds: int = 1,
) -> dict[str, Any]:
    """Every (strategy, budget, seed) replayed with METHOD; the report of the `all` run (else the last) with the
    curves under `cold_start`: per point the mean accuracy over the seeds (each seed its own random draw, or its
    own k-means starts for `active`) and each seed's."""
    console = console or Console(stderr=True)
    if cfg.cases != "all":  # the labels are chosen before the first case of every case of the split
        raise InputError("--label-budget scores every case of the split: leave --cases at all")
    cfg = replace(cfg, methods=(METHOD,))
    nums = [b for b in budgets if isinstance(b, int)]
    curves: dict[str, dict[str, dict[str, Any]]] = {}
    last: dict[str, Any] | None = None
    pool_size = 0
    for strategy in strategies if nums else []:
        runs: dict[int, list[dict[str, Any]]] = {}
        for seed in range(seeds):
            order, pool_size = labelling_order(ds, settings, cfg, strategy, max(nums), seed)
            for n in nums:
                ids = frozenset(order[:n])
                console.print(f"[dim]cold start {ds.name}: {strategy} (seed {seed}), {len(ids)} labels[/dim]")
                last = run_eval(ds, settings, replace(cfg, labelled_ids=ids), console)
                runs.setdefault(n, []).append(_point(last, ds, ids))
        curves[strategy] = {str(n): _mean(points) for n, points in runs.items()}
    if ALL in budgets:
        ids = frozenset(labelling_order(ds, settings, cfg, "random", 10**9)[0])
        pool_size = len(ids)
        console.print(f"[dim]cold start {ds.name}: every label known at the first case ({len(ids)})[/dim]")
        last = run_eval(ds, settings, replace(cfg, labelled_ids=ids), console)
        point = _mean([_point(last, ds, ids)])
        for strategy in strategies:
            curves.setdefault(strategy, {})[ALL] = point
    assert last is not None
    last["report"]["cold_start"] = {
        "method": METHOD,
        "pool": pool_size,
        "batch": BATCH,
        "seeds": seeds,
        "rule": "labels chosen once from the records known when the first case opened; none accrue after",
        "curves": curves,
        "targets": targets(curves, list(ds.taxonomy.fields)),
    }
    return last


def _point(result: dict[str, Any], ds: Dataset, ids: frozenset[str]) -> dict[str, Any]:
    """One run's accuracy per field, and how many of the chosen incidents had a label for it."""
    scores = result["report"]["scores"].get(METHOD, {})
    by_id = {i.id: i for i in ds.incidents}
    return {
        "labelled": len(ids),
        "fields": {
            f: {
                "accuracy": s["accuracy"],
                "n": s.get("n"),
                "with_label": sum(1 for i in ids if by_id[i].labels.get(f)),
            }
            for f, s in scores.items()
        },
    }


def _mean(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' runs of one point: the mean accuracy, and each seed's."""
    fields = points[0]["fields"]
    return {
        "labelled": points[0]["labelled"],
        "fields": {
            f: {
                "accuracy": float(sum(p["fields"][f]["accuracy"] for p in points) / len(points)),
                "per_seed": [p["fields"][f]["accuracy"] for p in points],
                "n": fields[f]["n"],
                "with_label": [p["fields"][f]["with_label"] for p in points],
            }
            for f in fields
        },
    }


def targets(curves: dict[str, dict[str, dict[str, Any]]], fields: list[str], n: int = 50) -> dict[str, Any]:
    """The issue's targets per field: with n active labels, >= 90% of the accuracy with every label, and more
    than n random labels."""

    def acc(strategy: str, key: str, f: str) -> float | None:
        return curves.get(strategy, {}).get(key, {}).get("fields", {}).get(f, {}).get("accuracy")

    out: dict[str, Any] = {}
    for f in fields:
        a, r, full = acc("active", str(n), f), acc("random", str(n), f), acc("active", ALL, f)
        out[f] = {
            f"active_{n}": a,
            f"random_{n}": r,
            ALL: full,
            "share_of_all": round(a / full, 3) if a is not None and full else None,
            "reaches_90pct_of_all": a is not None and full is not None and a >= 0.9 * full,
            "beats_random": a is not None and r is not None and a > r,
        }
    return out


def markdown(cold: dict[str, Any]) -> str:
    """The curves as a table: budget x strategy, a column per field (the mean over the seeds), and the targets."""
    curves = cold["curves"]
    fields = sorted({f for pts in curves.values() for p in pts.values() for f in p["fields"]})
    lines = [
        "",
        f"## Cold start ({cold['method']}, labels chosen from the {cold['pool']} incidents known at the first case)",
        "",
        "| labels | strategy | " + " | ".join(fields) + " |",
        "|---|---|" + "---|" * len(fields),
    ]
    keys = sorted(
        {k for pts in curves.values() for k in pts}, key=lambda k: (k == ALL, int(k) if k != ALL else 0)
    )
    for k in keys:
        for strategy, pts in curves.items():
            if k in pts and not (k == ALL and strategy != next(iter(curves))):
                p = pts[k]
                cells = [f"{p['fields'][f]['accuracy']:.3f}" if f in p["fields"] else "" for f in fields]
                # a budget above the pool labels all of it: the table says how many it had
                n = k if k == ALL or int(k) == p["labelled"] else f"{k} (pool: {p['labelled']})"
                who = "every label" if k == ALL else strategy
                lines.append(f"| {n} | {who} | " + " | ".join(cells) + " |")
    lines += ["", "Targets at 50 labels:", ""]
    for f, t in cold["targets"].items():
        lines.append(
            f"- {f}: active {_fmt(t['active_50'])}, random {_fmt(t['random_50'])}, every label {_fmt(t[ALL])}; "
            f"{_fmt(t['share_of_all'])} of every label's accuracy "
            f"({'meets' if t['reaches_90pct_of_all'] else 'misses'} 90%), "
            f"{'beats' if t['beats_random'] else 'does not beat'} random"
        )
    return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def learning_curve(cold: dict[str, Any], dataset: str, path: Path) -> Path:
    """Accuracy against labels, a panel per field, a line per strategy and `all` as a dashed level: matplotlib's
    object API on the Agg canvas, as bot/delivery/chart.py draws."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = cold["curves"]
    fields = sorted({f for pts in curves.values() for p in pts.values() for f in p["fields"]})
    fig = Figure(figsize=(4.2 * max(1, len(fields)), 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(fields)), squeeze=False)[0]
    colours = {"active": "#d62728", "random": "#1f77b4"}
    for ax, f in zip(axes, fields, strict=False):
        full = None
        for strategy, pts in curves.items():
            xs = sorted(int(k) for k in pts if k != ALL and f in pts[k]["fields"])
            ax.plot(xs, [pts[str(x)]["fields"][f]["accuracy"] for x in xs], marker="o",
                    color=colours.get(strategy), label=strategy)  # fmt: skip
            full = pts.get(ALL, {}).get("fields", {}).get(f, {}).get("accuracy", full)
        if full is not None:
            ax.axhline(full, color="#555555", linestyle="--", linewidth=1, label="every label")
        ax.set_xscale("log")
        ticks = sorted({int(k) for pts in curves.values() for k in pts if k != ALL})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("labelled incidents")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{dataset}: {f}", fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, format="png")
    return path
