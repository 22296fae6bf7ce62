"""Compare the bundled local models on labelled incidents (a quick check; the full harness is `evals/`).

    python scripts/compare_local_models.py [--n 30] [--models smollm2-135m gemma3-270m]

For each sampled Azure/GCP incident with a root-cause label (labels mapped onto the GenAI taxonomy), the history
holds only older incidents of the demo set. Prints accuracy of: the LLM alone (no retrieval), retrieval votes
alone, and the product's combination; plus mean LLM latency.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bot.config import Settings
from bot.store.demo import demo_history
from bot.store.factory import open_history
from bot.triage.llm import build_chat_model
from bot.triage.pipeline import Triager
from bot.triage.vote import knn_votes

FIELDS = ("symptom", "root_cause")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    args = ap.parse_args()
    history = demo_history()
    labelled = sorted(
        (i for i in history if i.source in ("azure", "gcp") and all(i.labels.get(f) for f in FIELDS)),
        key=lambda i: i.id,
    )
    step = max(1, len(labelled) // args.n)
    sample = labelled[::step][: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(data_dir=Path(tmp), seed_demo_history=False)
        store = open_history(base)
        store.upsert(history)
        for name in args.models:
            settings = base.model_copy(update={"local_model": name})
            triager = Triager(settings, store, build_chat_model(settings))
            hits = {m: {f: 0 for f in FIELDS} for m in ("llm", "retrieval", "combined")}
            latency = []
            for inc in sample:
                ticket = inc.model_copy(update={"labels": {}, "resolution": "", "later_text": ""})
                alone = triager.drafter.draft(ticket.body, [])  # type: ignore[union-attr]
                draft = triager.triage(ticket, before=inc.created_at)
                latency.append(draft.llm.latency_s)
                for f in FIELDS:
                    gold = inc.labels[f][0]
                    votes = knn_votes(draft.similar, f, triager.taxonomy)
                    hits["llm"][f] += getattr(alone.answer, f, None) == gold
                    hits["retrieval"][f] += next(iter(votes), None) == gold
                    hits["combined"][f] += draft.label(f) == gold
            print(f"{name}: n={len(sample)}, LLM latency mean {statistics.mean(latency):.1f}s")
            for method, per_field in hits.items():
                cells = ", ".join(f"{f} {v / len(sample):.0%}" for f, v in per_field.items())
                print(f"  {method:9s} {cells}")


if __name__ == "__main__":
    main()
