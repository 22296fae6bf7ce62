"""What the why-now priors do to the root cause: on issue 33's scenario and on dev tickets whose text states a change.

`python -m evals.evidence_priors`: the bot as installed (default taxonomy, the bundled demo history), LLM off (the
first post), the decision through `Triager.triage`. The dev tickets that state a change ("after a cluster upgrade",
"caused by a deployment") are held out of the history the model is trained on.

1. The scenario: "p99 latency 2 s -> 30 s, timeouts, started right after the router release", a deploy of the router
   12 minutes before and a GPU memory alert on the same service. The root cause with no context, with the priors
   alone (day one), and after N verdicts on such drafts that contradict the deploy (engineers keep the root cause
   decided without context) or confirm it (`deployment`). Only the candidates the classifier knows can be chosen
   (the demo history labels six root causes: no `infrastructure`).
2. The dev tickets that state a change, each given a synthetic change event 10 minutes before it (`config` where the
   sentence says configuration, else `deploy`): how often the root cause is deployment or configuration, and how
   often it is the gold root cause where one is labelled, without the prior (the learned odds alone: no say on day
   one) and with it.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.models import LabelDecision

# The trigger a ticket's own words give: "after/following/caused by ... release/deployment/upgrade/change".
STATED = re.compile(
    r"\b(after|following|since|caused by|due to|introduced by|triggered by|during)\s+(an?|the|our|recent|a recent|"
    r"the recent)?\s*(\w+\s){0,2}(release|deploy(ment)?|rollout|roll-out|upgrade|update|configuration change|"
    r"config change|change|migration)s?\b",
    re.IGNORECASE,
)
SCENARIO = (
    "chat-api p99 latency 2 s -> 30 s, timeouts",
    "p99 latency went from 2 s to 30 s with timeouts on chat completions; it started right after the router release.",
)


def _row(name: str, d: LabelDecision, deploy_odds: float = 1.0) -> str:
    p0, top3, ev = (
        d.calibrated.get("deployment", 0),
        ", ".join(d.candidates[:3]),
        "; ".join(d.evidence) or "-",
    )
    return f"| {name} | {d.label} {d.confidence:.2f} | {p0:.2f} | x{deploy_odds:.2f} | {top3} | {ev} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "-n", type=int, nargs="*", default=[5, 20], help="Verdict counts replayed (default 5 20)."
    )
    args = ap.parse_args()
    os.environ.setdefault("INCIBOT_DATA_DIR", tempfile.mkdtemp(prefix="evidence-priors-"))

    from bot.config import Settings
    from bot.models import ChangeEvent, ChangeKind, ConcurrentSignal, Context, RecentChange, Ticket
    from bot.store.demo import demo_history
    from bot.store.factory import open_history
    from bot.triage.evidence import NO_PRIORS, EvidenceBook, configured_priors
    from bot.triage.pipeline import Triager

    history = sorted(demo_history(), key=lambda i: i.created_at)
    stated = [i for i in history if STATED.search(f"{i.title} {i.text}")]
    held = {i.id for i in stated}
    settings = Settings(seed_demo_history=False)
    store = open_history(settings)
    store.upsert([i for i in history if i.id not in held])
    tri = Triager.from_settings(settings, store, train_now=True)
    tri.model, tri.drafter = None, None
    priors = configured_priors()
    print(
        f"demo history: {len(history) - len(held)} incidents trained on, {len(held)} held out (stated change)"
    )

    def context(kind: ChangeKind, at: datetime, service: str, alert: bool) -> Context:
        change = ChangeEvent(id="c1", service=service, kind=kind, summary="router v2.3.1", at=at)
        gpu = [ConcurrentSignal(key="gpu", title="GPU memory above 95%", since=at)] if alert else []
        return Context(service=service, window_min=120, changes=[RecentChange(change=change, minutes_before=12)],
                       concurrent=gpu)  # fmt: skip

    def odds() -> float:
        return tri.trainer.evidence.ratio(["change:deploy"], "root_cause", "deployment")

    # 1. the scenario
    ticket = Ticket(id="scenario", title=SCENARIO[0], text=SCENARIO[1], service="chat-api")
    ctx = context(ChangeKind.DEPLOY, ticket.created_at - timedelta(minutes=12), "chat-api", alert=True)
    print("\n| root cause | decided | P(deployment) before evidence | deploy's odds on deployment | candidates | "
          "evidence named (odds, for the label decided) |\n|---|---|---|---|---|---|")  # fmt: skip
    plain = tri.triage(ticket).labels["root_cause"]
    print(_row("no context", plain, 1.0))
    tri.trainer.evidence = EvidenceBook(priors=NO_PRIORS)
    print(
        _row(
            "context, learned odds only (before priors)", tri.triage(ticket, context=ctx).labels["root_cause"]
        )
    )
    for gold, word in ((plain.label, "contradicting"), ("deployment", "confirming")):
        tri.trainer.evidence = EvidenceBook(priors=priors)
        done = 0
        if word == "contradicting":
            rc = tri.triage(ticket, context=ctx).labels["root_cause"]
            print(_row("context + priors (day one)", rc, odds()))
        for n in args.n:
            for i in range(done, n):
                t = ticket.model_copy(update={"id": f"v{i}", "title": f"{SCENARIO[0]} ({i})"})
                tri.record_verdict(tri.triage(t, context=ctx), {"root_cause": [gold]})
            done = n
            rc = tri.triage(ticket, context=ctx).labels["root_cause"]
            print(_row(f"+ {n} {word} verdicts (`{gold}`)", rc, odds()))

    # 2. dev tickets whose text states a change
    rows = []
    for inc in stated:
        said = STATED.search(f"{inc.title} {inc.text}")
        kind = ChangeKind.CONFIG if said and "config" in said.group(0).lower() else ChangeKind.DEPLOY
        t = inc.ticket()
        c = context(kind, t.created_at - timedelta(minutes=10), t.service or "svc", alert=False)
        out = {}
        for name, book in (("none", EvidenceBook(priors=NO_PRIORS)), ("prior", EvidenceBook(priors=priors))):
            tri.trainer.evidence = book
            out[name] = tri.triage(t, context=c).labels["root_cause"].label
        rows.append((inc, kind, out))
    print(f"\ndev tickets whose text states a change: {len(rows)}")
    print("| ticket | change given | gold root cause | without prior | with prior |\n|---|---|---|---|---|")
    for inc, kind, out in rows:
        gold = ",".join(inc.labels.get("root_cause", [])) or "(unlabelled)"
        print(f"| {inc.id[:40]} | {kind} | {gold} | {out['none']} | {out['prior']} |")
    change_causes = {"deployment", "configuration"}
    labelled = [(inc, out) for inc, _, out in rows if inc.labels.get("root_cause")]
    for name in ("none", "prior"):
        share = sum(out[name] in change_causes for *_, out in rows)
        right = sum(out[name] in inc.labels["root_cause"] for inc, out in labelled)
        print(f"{name:>5}: root cause deployment/configuration {share} of {len(rows)}; "
              f"right {right} of {len(labelled)} labelled")  # fmt: skip


if __name__ == "__main__":
    main()
