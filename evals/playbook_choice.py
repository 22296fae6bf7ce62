"""How much say the neighbours' mapped fixes should get in the playbook choice, estimated on older history.

For each labelled incident in the oldest `HISTORY` share of a dataset (never the eval's test cases) whose own
resolution maps to a playbook: the bot's plain draft (no LLM, history strictly older than it), the playbook its
decided labels fit best (`Playbook.match`), and the neighbours' fix vote (`Triager.fixes_vote`). It prints how often
each alone names the incident's own mapped fix (precision where it names one) and the agreement of the choice for
a few weights. `FIXES_WEIGHT` in bot/triage/pipeline.py is the ratio of the two precisions, pooled over the datasets
where both were measured (a dataset whose labels never reach a playbook's scope says nothing about the ratio):
evidence that is right k times as often gets k times the say.

Run: python -m evals.playbook_choice genai-status cloud-labeled
"""

from __future__ import annotations

import sys
from typing import Any

from bot.config import Settings
from bot.triage.pipeline import Triager
from evals import datasets
from evals.harness import eval_store

HISTORY = 0.7  # the eval's cases are the most recent 30%
WARMUP = 0.1  # the first incidents have too little older history to retrieve from
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def observations(name: str) -> list[dict[str, Any]]:
    ds = datasets.load(name, datasets.DEFAULT_ROOT, None)
    settings = Settings().model_copy(update={"retrieval_k": 5})
    tri = Triager(settings, eval_store(ds, settings), None, taxonomy=ds.taxonomy)
    tax = tri.taxonomy
    lab = sorted((i for i in ds.incidents if i.labels and i.body.strip()), key=lambda i: i.created_at)
    out = []
    for case in lab[int(len(lab) * WARMUP) : int(len(lab) * HISTORY)]:
        real = tri.playbook_choice.mapper.map(case.resolution) if case.resolution.strip() else None
        if real is None:
            continue
        d = tri.triage(case.ticket(), use_llm=False, before=case.created_at)
        decided = {f: tax.to_default(f, x.label) for f, x in d.labels.items()}
        weights = {f: x.confidence for f, x in d.labels.items()}
        norm = sum(weights.values()) or 1.0
        scope = {p.id: p.match(decided, weights) / norm for p in tri.playbooks.by_id.values()}
        out.append(
            {"real": real.playbook_id, "scope": scope, "fixes": tri.playbook_choice.fixes_vote(d.similar)}
        )
    return out


def precision(rows: list[dict[str, Any]], key: str) -> tuple[int, int]:
    """(right, named): how often the source's top playbook is the own mapped fix, where it names one."""
    named = [r for r in rows if r[key] and max(r[key].values()) > 0]
    right = sum(max(r[key], key=r[key].get) == r["real"] for r in named)
    return right, len(named)


def agreement(rows: list[dict[str, Any]], w: float, fallback: str = "general-investigation") -> float:
    ok = 0
    for r in rows:
        sc = {p: r["scope"][p] + w * r["fixes"].get(p, 0.0) for p in r["scope"]}
        best = max(sc, key=lambda p: sc[p])
        ok += (best if sc[best] > 0 else fallback) == r["real"]
    return ok / len(rows) if rows else 0.0


def main(argv: list[str]) -> None:
    pooled = {"scope": [0, 0], "fixes": [0, 0]}
    for name in argv or ["genai-status", "cloud-labeled"]:
        rows = observations(name)
        line = [f"{name}: {len(rows)} incidents whose fix maps"]
        got = {key: precision(rows, key) for key in pooled}
        for key, (right, named) in got.items():
            if all(n for _, n in got.values()):
                pooled[key][0] += right
                pooled[key][1] += named
            line.append(f"{key} precision {right}/{named}")
        line.append("agreement " + ", ".join(f"w={w}: {agreement(rows, w):.3f}" for w in WEIGHTS))
        print("; ".join(line))
    p = {k: v[0] / v[1] if v[1] else 0.0 for k, v in pooled.items()}
    print(f"pooled precision: scope {p['scope']:.3f}, fixes {p['fixes']:.3f}; "
          f"estimated FIXES_WEIGHT {p['fixes'] / p['scope']:.2f}" if p["scope"] else "no scope evidence")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
