"""How well past incidents' mitigation actions are read off their resolution text (evals/mitigation-sample.md).

The sample holds ids and the hand-checked action only; the text is read from ../shared/datasets at run time, cut
to SNIPPET characters, exactly as the reviewer read it.

Run: python -m evals.mitigation_sample            precision / recall of the extracted action and of "no fix"
     python -m evals.mitigation_sample --draw     print a fresh draw (ids and text), for labelling
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from evals.datasets import DEFAULT_ROOT, load

SAMPLE = Path(__file__).resolve().parent / "mitigation-sample.jsonl"
DATASETS = ("genai-status", "cloud-labeled", "github-status")
SEED = 20261204
SNIPPET = 1200  # what the reviewer read and the extractor sees
TEST_FRACTION = 0.3  # the eval's test split (evals/harness.py select_cases): never drawn from
NO_FIX = "none"


def older_part(name: str, root: Path = DEFAULT_ROOT) -> list[HistoricalIncident]:
    """Incidents with a resolution that opened before the dataset's most recent TEST_FRACTION (by created_at)."""
    incs = sorted(load(name, root).incidents, key=lambda i: i.created_at)
    labelled = [i for i in incs if i.labels and i.body.strip()]  # what select_cases splits
    cut = min(x[int(len(x) * (1 - TEST_FRACTION))].created_at for x in (incs, labelled))
    return [i for i in incs if i.created_at < cut and i.resolution.strip()]


def used_elsewhere() -> set[str]:
    """Ids of the playbook samples and dev draws: the playbook keywords were tuned on some of them."""
    here = Path(__file__).resolve().parent
    return {
        json.loads(x)["id"]
        for f in here.glob("playbook-*.jsonl")
        for x in f.read_text(encoding="utf-8").splitlines()
        if x.strip()
    }


def draw(
    n: int, seed: int, root: Path = DEFAULT_ROOT, exclude: set[str] | None = None
) -> list[dict[str, str]]:
    """n records, seeded, from the older part of every dataset pooled: half from every record with a resolution,
    half from those whose resolution has an engineering action verb (`FIX_ACTION`, the generic pattern written for
    the playbook samples), so that the sample holds fixes to score, not only status lines."""
    from bot.text import informative
    from evals.playbook_agreement import FIX_ACTION

    rng = random.Random(seed)
    skip = (exclude or set()) | used_elsewhere()
    pool = [(name, i) for name in DATASETS for i in older_part(name, root) if i.id not in skip]
    acting = [x for x in pool if FIX_ACTION.search("\n".join(informative([x[1].resolution[:SNIPPET]])))]
    first = rng.sample(acting, n // 2)
    rest = rng.sample([x for x in pool if x not in first], n - len(first))
    return [
        {"dataset": name, "id": inc.id, "resolution": inc.resolution[:SNIPPET]}
        for name, inc in sorted(first + rest, key=lambda x: (x[0], x[1].id))
    ]


def texts(rows: list[dict], root: Path = DEFAULT_ROOT) -> dict[str, str]:
    by_ds: dict[str, dict[str, str]] = {}
    for name in sorted({r["dataset"] for r in rows}):
        by_ds[name] = {i.id: i.resolution[:SNIPPET] for i in load(name, root).incidents}
    return {r["id"]: by_ds[r["dataset"]][r["id"]] for r in rows}


def score(pairs: list[tuple[str, str]]) -> dict[str, float | int]:
    """(truth, extracted) pairs, NO_FIX for none: precision and recall of the action, and of "no fix"."""
    acted = [(t, e) for t, e in pairs if e != NO_FIX]
    true_fix = [(t, e) for t, e in pairs if t != NO_FIX]
    said_none = [(t, e) for t, e in pairs if e == NO_FIX]
    true_none = [(t, e) for t, e in pairs if t == NO_FIX]

    def ratio(good: int, n: int) -> float:
        return round(good / n, 3) if n else float("nan")

    return {
        "n": len(pairs),
        "action_precision": ratio(sum(t == e for t, e in acted), len(acted)),
        "action_recall": ratio(sum(t == e for t, e in true_fix), len(true_fix)),
        "extracted": len(acted),
        "with_fix": len(true_fix),
        "no_fix_precision": ratio(sum(t == NO_FIX for t, _ in said_none), len(said_none)),
        "no_fix_recall": ratio(sum(e == NO_FIX for _, e in true_none), len(true_none)),
        "accuracy": ratio(sum(t == e for t, e in pairs), len(pairs)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draw", type=int, default=0, help="print a fresh draw of N records instead of scoring")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    ap.add_argument("--errors", action="store_true", help="list the disagreements")
    args = ap.parse_args()
    if args.draw:
        taken = (
            {json.loads(x)["id"] for x in args.sample.read_text().splitlines()}
            if args.sample.exists()
            else set()
        )
        for row in draw(args.draw, args.seed, exclude=taken):
            print(json.dumps(row, ensure_ascii=False))
        return
    from bot.triage.mitigation import MitigationExtractor

    rows = [json.loads(x) for x in args.sample.read_text(encoding="utf-8").splitlines() if x.strip()]
    text = texts(rows)
    extractor = MitigationExtractor(Taxonomy.load(Settings().taxonomy_path))
    found = extractor.summaries([text[r["id"]] for r in rows])
    # A record with several actions of the same weight lists the others in `also`: any of them counts as right.
    pairs = []
    for r, f in zip(rows, found, strict=True):
        got = f.action if f else NO_FIX
        truth = r["action"] or NO_FIX
        pairs.append((got if got in r.get("also", []) else truth, got))
    print(json.dumps(score(pairs)))
    print("truth:", dict(Counter(t for t, _ in pairs)), " extracted:", dict(Counter(e for _, e in pairs)))
    if args.errors:
        for r, (t, e), f in zip(rows, pairs, found, strict=True):
            if t != e:
                print(f"- {r['id']}: truth {t}, extracted {e}: {f.sentence if f else ''}")


if __name__ == "__main__":
    main()
