"""Rebuild bot/resources/demo_history.jsonl.gz from ../shared/datasets (maintainers only; the product
ships the result and never reads ../shared at run time).

    python scripts/build_demo_history.py [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from evals.adapters import load_dataset, to_genai_labels

OUT = Path(__file__).resolve().parent.parent / "bot" / "resources" / "demo_history.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    args = ap.parse_args()
    records = [
        to_genai_labels(i)
        for name in ("genai-status", "azure", "gcp")
        for i in load_dataset(name, args.datasets)
    ]
    # Keep the shipped file small: what retrieval shows, not every later status update.
    lines = []
    for r in records:
        slim = r.model_copy(
            update={"raw": None, "later_text": r.later_text[:1000], "resolution": r.resolution[:1500]}
        )
        lines.append(slim.model_dump_json(exclude_none=True) + "\n")
    # mtime=0: the same data gives the same bytes, so a rebuild shows no spurious change.
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join(lines).encode("utf-8"))
    print(f"wrote {len(records)} incidents to {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
