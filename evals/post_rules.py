"""Does a post contradict itself or show what is no evidence? Checks the rules of issue 32 on N dev tickets.

`python -m evals.post_rules [-n 50]`: the bot as installed (default taxonomy, the bundled demo history of public
GenAI and cloud incidents) with N dev tickets held out of that history, evenly spread over its most recent 30%. The
rest is imported into a fresh embedded store and trained on; each held-out ticket is triaged by `Triager.triage` (the
bot's code path, LLM off: the first post) and rendered as the Slack post, which is judged by rules written here,
independently of the code that builds it:

- playbook: the playbook is not one the likeliest listed fix leads to, and the post gives no reason;
- denied: a word shown as the ticket's evidence is denied where the ticket says it ("No deployment announced");
- not evidence: a word shown as evidence holds a digit, starts or ends with a stop word, names a model or clock, or
  is a word every report uses;
- share as odds: a percentage shown for a fix when only the neighbours' fixes decided it (a share of a handful);
- no-fix rows: similar incidents listed one row each as "no fix recorded".

Counts are of posts breaking each rule. The script reads drafts through attributes both older and newer drafts
have, so it can be run against an older checkout (PYTHONPATH=that checkout) for a before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

STOP = {
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to", "with", "is",
    "are", "was", "were", "be", "been", "this", "that", "some", "all", "our", "we", "us", "it", "its",
}  # fmt: skip
GENERIC = {
    "api", "use", "uses", "using", "reports", "report", "reported", "users", "user", "customers", "customer",
    "chat", "completions", "endpoint", "issue", "issues", "incident", "elevated", "investigating", "utc", "pdt",
    "pst", "gpt", "claude", "gemini", "openai", "anthropic", "chatgpt", "some", "currently",
}  # fmt: skip
NEGATION = re.compile(
    r"\b(?:no|not|without|never|none|nor|isn't|wasn't|didn't|don't|doesn't)\b", re.IGNORECASE
)
RULES = ("playbook", "denied", "not evidence", "share as odds", "no-fix rows")


def denied(term: str, text: str) -> bool:
    """Every mention of `term` follows a negation within three words, in the same clause."""
    pat = re.compile(r"\b" + r"\W+".join(map(re.escape, term.split())) + r"\b", re.IGNORECASE)
    hits = list(pat.finditer(text))
    if not hits:
        return False
    for m in hits:
        before = re.split(r"[.;:,!?]", text[: m.start()])[-1].split()[-4:]
        if not NEGATION.search(" ".join(before)):
            return False
    return True


def not_evidence(term: str) -> bool:
    words = term.lower().split()
    return (
        any(ch.isdigit() for ch in term)
        or words[0] in STOP
        or words[-1] in STOP
        or all(w in GENERIC or w in STOP for w in words)
    )


def judge(draft, text: str, post: str) -> set[str]:  # type: ignore[no-untyped-def]
    broken: set[str] = set()
    m = draft.mitigation
    hyps = m.hypotheses if m is not None else []
    if hyps and draft.playbook.id not in hyps[0].playbooks and not getattr(draft.playbook, "reason", ""):
        broken.add("playbook")
    terms = [t for h in hyps for t in h.ticket_terms]
    if any(denied(t, text) for t in terms):
        broken.add("denied")
    if any(not_evidence(t) for t in terms):
        broken.add("not evidence")
    if m is not None and m.source == "vote" and any(getattr(h, "fixed_count", None) is None for h in hyps):
        broken.add("share as odds")
    if "no fix recorded" in post:
        broken.add("no-fix rows")
    return broken


def check(
    n: int, untrained: bool = False, every: int = 1
) -> tuple[Counter[str], list[dict[str, object]], str]:
    """Posts breaking each rule among `n` held-out dev tickets, a row per ticket, and the classifier's status; the
    history is every `every`-th of the rest (a test keeps it small)."""
    from bot.config import Settings
    from bot.delivery.slack.blocks import draft_blocks
    from bot.store.demo import demo_history
    from bot.store.factory import open_history
    from bot.triage.pipeline import Triager
    from bot.triage.trainer import trainer_for

    ordered = sorted(demo_history(), key=lambda i: i.created_at)
    recent = ordered[int(len(ordered) * 0.7) :]
    step = max(len(recent) / n, 1.0)
    cases = [recent[int(i * step)] for i in range(min(n, len(recent)))]
    held_out = {c.id for c in cases}
    settings = Settings(seed_demo_history=False)
    store = open_history(settings)
    store.upsert([i for i in ordered if i.id not in held_out][::every])
    if untrained:
        triager = Triager(
            settings, store, None
        )  # no trainer, no model: what a post drafted before training says
    elif _trains_now():
        triager = Triager.from_settings(settings, store, train_now=True)
    else:  # an older checkout: train as its CLI did, synchronously
        trainer = trainer_for(settings, store, Triager(settings, store, None).taxonomy)
        trainer.train_now()
        triager = Triager(settings, store, None, trainer=trainer)
    triager.model = None  # the retrieval draft: what is posted first, and all there is without an LLM
    triager.drafter = None
    counts: Counter[str] = Counter()
    rows: list[dict[str, object]] = []
    for case in cases:
        ticket = case.ticket()
        draft = triager.triage(ticket, use_llm=False)
        post = json.dumps(draft_blocks(case.id, ticket, draft, triager.taxonomy, stage="retrieval"))
        broken = judge(draft, triager.preparer.text(ticket), post)
        counts.update(broken)
        rows.append({"id": case.id, "broken": sorted(broken), "playbook": draft.playbook.id,
                     "terms": [t for h in (draft.mitigation.hypotheses if draft.mitigation else [])
                               for t in h.ticket_terms]})  # fmt: skip
    return counts, rows, triager.trainer.status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None, help="Write the per-ticket results as JSON here.")
    ap.add_argument("--untrained", action="store_true", help="Before the first training: the vote decides.")
    args = ap.parse_args()
    os.environ.setdefault("INCIBOT_DATA_DIR", tempfile.mkdtemp(prefix="post-rules-"))
    counts, rows, status = check(args.n, args.untrained)
    print(f"demo history less {len(rows)} held-out dev tickets: classifier {status[:70]}...")
    shown = sum(1 for r in rows if r["terms"])
    print(f"posts showing any ticket words as evidence: {shown} of {len(rows)}")
    print("| rule | posts breaking it |\n|---|---|")
    for r in RULES:
        print(f"| {r} | {counts[r]} of {len(rows)} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")


def _trains_now() -> bool:
    import inspect

    from bot.triage.pipeline import Triager

    return "train_now" in inspect.signature(Triager.from_settings).parameters


if __name__ == "__main__":
    main()
