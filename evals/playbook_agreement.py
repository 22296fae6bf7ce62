"""How often the resolution -> playbook mapper agrees with the hand-checked samples (evals/playbook-sample.md).

Two samples of 50, both from licensed sets only: `playbook-sample.jsonl` (any non-trivial resolution: mostly status
lines, so it measures "no fix described -> None") and `playbook-fixes.jsonl` (resolutions that describe an action,
picked by the generic `FIX_ACTION` rule below, so it measures whether real fixes are found and named right).

Run: python -m evals.playbook_agreement [sample.jsonl ...]   (default: both samples)
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.text import informative
from bot.triage.playbooks import PlaybookLibrary
from bot.triage.resolutions import ResolutionMapper, informative_text
from evals.adapters import load_dataset
from evals.datasets import DEFAULT_ROOT

SAMPLE = Path(__file__).resolve().parent / "playbook-sample.jsonl"
FIXES_SAMPLE = Path(__file__).resolve().parent / "playbook-fixes.jsonl"
# Dev draws, for choosing the mapper's thresholds (never the samples above); genai-status rows carry no text.
DEV = [Path(__file__).resolve().parent / n for n in ("playbook-dev.jsonl", "playbook-dev-genai.jsonl")]
# Licensed datasets only: cloud-labeled is CC0, github-status Unlicense; genai-status has no license.
SOURCES = {"azure": "cloud-labeled", "gcp": "cloud-labeled", "github-status": "github-status"}
SEED = 20240611
MIN_WORDS = 8  # a "non-trivial" resolution for the sample: at least this many informative words
SNIPPET = 400
FIXES_SEED = 20261202
FIXES_SNIPPET = 1000  # the fix sample keeps more text: post-incident reviews often open with a timeline
# "Says what was done": an engineering action verb in a generic form (rolled back, failed over, scaled out, deployed
# a fix, ...). Written from how status pages phrase mitigations in general, before the sample was drawn and without
# running the mapper; a record matching it may still describe no playbook (the label can be null).
FIX_ACTION = re.compile(
    r"\b(roll(ed|ing)? ?back|roll(ed|ing) forward|revert(ed|ing)?|fail(ed|ing)? ?over|restart(ed|ing)|reboot(ed|ing)"
    r"|recycl(ed|ing)|scal(ed|ing) (up|out)|add(ed|ing) (additional |more )?(capacity|resources|instances|nodes|servers)"
    r"|increas(ed|ing) (the )?(capacity|quota|limit)|provision(ed|ing)|redirect(ed|ing)|re-?rout(ed|ing)|throttl(ed|ing)"
    r"|rate[- ]limit(ed|ing)?|block(ed|ing)|disabl(ed|ing)|paus(ed|ing)|halt(ed|ing)|stopp(ed|ing)|correct(ed|ing)"
    r"|renew(ed|ing)|replac(ed|ing)|rebalanc(ed|ing)|drain(ed|ing)|patch(ed|ing)|hotfix|isolat(ed|ing)|remov(ed|ing)"
    r"|purg(ed|ing)|flush(ed|ing)|clear(ed|ing)|shift(ed|ing) traffic|moved? traffic|rebuil(t|ding)"
    r"|restor(ed|ing) (the |from )?(backup|previous|configuration|setting)"
    r"|(deploy(ed|ing)|appl(ied|ying)|roll(ed|ing) out|push(ed|ing)|implement(ed|ing)) (a |an |the )?"
    r"(fix|patch|update|change|configuration|mitigation)"
    r"|mitigat(ed|ion) (by|was|through|involved|included|steps))\b",
    re.IGNORECASE,
)


def candidates(root: Path = DEFAULT_ROOT) -> list[tuple[str, HistoricalIncident]]:
    """(dataset, incident) for every licensed record whose resolution says something, in file order."""
    return [
        (SOURCES[name], inc)
        for name in SOURCES
        for inc in load_dataset(name, root)
        if len(informative_text(inc.resolution).split()) >= MIN_WORDS
    ]


def draw(n: int = 50, seed: int = SEED, root: Path = DEFAULT_ROOT) -> list[dict]:
    """The sample to label by hand: n records drawn with a fixed seed; labels are filled in afterwards."""
    picked = random.Random(seed).sample(candidates(root), n)
    return [
        {"dataset": ds, "id": inc.id, "resolution": inc.resolution[:SNIPPET], "playbook": None, "note": ""}
        for ds, inc in picked
    ]


def fix_candidates(
    root: Path = DEFAULT_ROOT, exclude: set[str] | None = None
) -> list[tuple[str, HistoricalIncident]]:
    """(dataset, incident) for every licensed record whose resolution (first FIXES_SNIPPET characters, status
    boilerplate updates dropped) names an action, in file order; `exclude` ids are left out."""
    exclude = exclude or set()
    return [
        (SOURCES[name], inc)
        for name in SOURCES
        for inc in load_dataset(name, root)
        if inc.id not in exclude
        and FIX_ACTION.search("\n".join(informative([inc.resolution[:FIXES_SNIPPET]])))
    ]


def draw_fixes(n: int = 50, seed: int = FIXES_SEED, root: Path = DEFAULT_ROOT) -> list[dict]:
    """The fix sample to label by hand: n records naming an action, none from the first sample."""
    first = {r["id"] for r in _rows(SAMPLE)}
    picked = random.Random(seed).sample(fix_candidates(root, first), n)
    return [
        {
            "dataset": ds,
            "id": inc.id,
            "resolution": inc.resolution[:FIXES_SNIPPET],
            "playbook": None,
            "note": "",
        }
        for ds, inc in picked
    ]


def _rows(path: Path, root: Path = DEFAULT_ROOT) -> list[dict]:
    """A sample's rows; rows without text (genai-status: no license to copy it) get it from the dataset."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = {r["dataset"] for r in rows if "resolution" not in r}
    texts = {inc.id: inc.resolution[:FIXES_SNIPPET] for name in missing for inc in load_dataset(name, root)}
    return [r if "resolution" in r else {**r, "resolution": texts.get(r["id"], "")} for r in rows]


def agreement(mapper: ResolutionMapper, sample_path: Path = SAMPLE) -> dict:
    """Agreement of mapper vs hand label (None == None counts), coverage, accuracy where it maps, disagreements."""
    rows = _rows(sample_path)
    matches = mapper.map_many([r["resolution"] for r in rows])
    got = [m.playbook_id if m else None for m in matches]
    agree = sum(g == r["playbook"] for g, r in zip(got, rows, strict=True))
    mapped = [(g, r) for g, r in zip(got, rows, strict=True) if g is not None]
    n = len(rows)
    return {
        "n": n,
        "agreement": round(agree / n, 3) if n else 0.0,
        "coverage": round(len(mapped) / n, 3) if n else 0.0,
        "accuracy_when_mapped": round(sum(g == r["playbook"] for g, r in mapped) / len(mapped), 3)
        if mapped
        else 0.0,
        "confusion": [
            {"id": r["id"], "label": r["playbook"], "mapped": g, "score": m.score if m else None}
            for g, r, m in zip(got, rows, matches, strict=True)
            if g != r["playbook"]
        ],
    }


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or [SAMPLE, FIXES_SAMPLE]
    mapper = ResolutionMapper(PlaybookLibrary.load(Settings().playbooks_dir))
    for path in paths:
        result = agreement(mapper, path)
        print(f"{path.name}: n={result['n']} agreement={result['agreement']} coverage={result['coverage']} "
              f"accuracy_when_mapped={result['accuracy_when_mapped']} (min_score={mapper.min_score})")  # fmt: skip
        for c in result["confusion"]:
            print(f"  {c['id']}: label={c['label']} mapped={c['mapped']} score={c['score']}")


if __name__ == "__main__":
    main(sys.argv[1:])
