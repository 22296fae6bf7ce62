"""Triage-time text written after the fact: a case's title or first update that already states the cause, the fix
or that it is over (Azure's "What happened?" is written for the review; some first updates of a status page
already say "resolved"). The harness flags such cases and scores every field on all cases and on the unflagged ones.

Rules on general wording, not on records; their precision and recall are measured on a hand-checked sample
(`python -m evals.after_the_fact [evals/after-the-fact-holdout.jsonl]`; how drawn and judged: evals/README.md).
"""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum
from pathlib import Path


class Hindsight(StrEnum):
    RESOLVED = "resolved"  # says it is over, or when it ended
    CAUSE = "cause"  # says why it happened
    FIX = "fix"  # says what was done about it


_T = r"\d{1,2}:\d{2}"  # a clock time
_RULES: dict[Hindsight, re.Pattern[str]] = {
    Hindsight.RESOLVED: re.compile(
        r"\b(?:has|have|had) (?:now )?been (?:fully )?(?:resolved|mitigated|fixed|restored)\b"
        r"|\b(?:is|was|were) (?:now )?(?:fully |partially )?(?:resolved|mitigated)\b"
        r"|\b(?:has|have) (?:now )?(?:fully )?recovered\b|\bfully recovered\b"
        r"|\bno longer (?:experiencing|seeing|impacted|affected)\b"
        r"|\breturned to (?:normal|expected|healthy)\b"
        # a window with its end: "Between 09:00 UTC on 1 May and 11:30 UTC on 2 May 2023, ..."
        rf"|\bbetween {_T}.{{0,80}}? and (?:until |approximately |about )?{_T}"
        rf"|\bfrom {_T}.{{0,60}}? (?:to|until) (?:approximately |about )?{_T}",
        re.I,
    ),
    Hindsight.CAUSE: re.compile(
        r"\broot cause\b|\b(?:was|were|is|are|been) (?:caused|triggered) by\b|\bas a result of\b"
        r"|\bresulted from\b|\bdue to\b|\bthe cause (?:of|was)\b|\bthis (?:caused|led to|triggered)\b",
        re.I,
    ),
    Hindsight.FIX: re.compile(
        r"\b(?:rolled|rolling) back\b|\brollback of\b|\breverted\b"
        r"|\b(?:deployed|applied|implemented) (?:a |the )?(?:fix|mitigation|hotfix)\b"
        r"|\bmitigation (?:has been|was) (?:applied|deployed)\b|\bmitigated (?:by|the)\b"
        r"|\b(?:we|engineers|our team) (?:restarted|failed over|rerouted|redirected)\b",
        re.I,
    ),
}


# "until / once / when this issue is resolved": a resolution still to come, not one that happened.
_FUTURE = re.compile(r"\b(?:until|once|when|after|if)\b[^.!?\n]{0,40}$", re.I)


def _states(rule: re.Pattern[str], text: str) -> bool:
    return any(not _FUTURE.search(text[max(0, m.start() - 40) : m.start()]) for m in rule.finditer(text))


def hindsight(text: str) -> list[Hindsight]:
    """What the text already states that a team could not know when the incident opened."""
    return [kind for kind, rule in _RULES.items() if _states(rule, text)]


SAMPLE = Path(__file__).resolve().parent / "after-the-fact-sample.jsonl"  # the rules were written on this one
HOLDOUT = (
    Path(__file__).resolve().parent / "after-the-fact-holdout.jsonl"
)  # judged before the rules ran on it


def measure(sample: Path = SAMPLE) -> dict[str, float | int]:
    """Precision and recall of `hindsight` (any kind) against the hand-checked flags of the sample."""
    rows = [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines() if line.strip()]
    tp = fp = fn = tn = 0
    for r in rows:
        got, truth = bool(hindsight(r["text"])), bool(r["after_the_fact"])
        tp += got and truth
        fp += got and not truth
        fn += truth and not got
        tn += not got and not truth
    return {
        "n": len(rows),
        "flagged_by_hand": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "true_pos": tp,
        "false_pos": fp,
        "false_neg": fn,
        "true_neg": tn,
    }


if __name__ == "__main__":
    json.dump(measure(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE), sys.stdout, indent=1)
    print()
