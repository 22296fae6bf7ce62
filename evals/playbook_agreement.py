"""How often the resolution -> playbook mapper agrees with a hand-checked sample (evals/playbook-sample.jsonl).

Run: python -m evals.playbook_agreement [sample.jsonl]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.playbook_map import ResolutionMapper, informative_text
from bot.playbooks import PlaybookLibrary
from evals.adapters import load_dataset
from evals.datasets import DEFAULT_ROOT

SAMPLE = Path(__file__).resolve().parent / "playbook-sample.jsonl"
# Licensed datasets only: cloud-labeled is CC0, github-status Unlicense; genai-status has no license.
SOURCES = {"azure": "cloud-labeled", "gcp": "cloud-labeled", "github-status": "github-status"}
SEED = 20240611
MIN_WORDS = 8  # a "non-trivial" resolution for the sample: at least this many informative words
SNIPPET = 400


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


def agreement(mapper: ResolutionMapper, sample_path: Path = SAMPLE) -> dict:
    """Agreement of mapper vs hand label (None == None counts), coverage, accuracy where it maps, disagreements."""
    rows = [json.loads(line) for line in sample_path.read_text(encoding="utf-8").splitlines() if line.strip()]
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
    path = Path(argv[0]) if argv else SAMPLE
    mapper = ResolutionMapper(PlaybookLibrary.load(Settings().playbooks_dir))
    result = agreement(mapper, path)
    print(f"n={result['n']} agreement={result['agreement']} coverage={result['coverage']} "
          f"accuracy_when_mapped={result['accuracy_when_mapped']} (min_score={mapper.min_score})")  # fmt: skip
    for c in result["confusion"]:
        print(f"  {c['id']}: label={c['label']} mapped={c['mapped']} score={c['score']}")


if __name__ == "__main__":
    main(sys.argv[1:])
