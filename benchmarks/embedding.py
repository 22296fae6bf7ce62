"""Embedding throughput, this checkout's embedder against another revision's, interleaved on the same texts (a
sample of the 100,000-incident benchmark history), with CPU time beside wall time: on a shared machine the wall
time moves with the load, the CPU time per text much less.

    .venv/bin/python -m benchmarks.embedding [--against REV] [--n 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.core import scaled_history
from bot.config import Settings
from bot.store import embeddings
from bot.store.vectors import embed_text


def _embedder_at(rev: str) -> embeddings.MiniLMEmbedder:
    source = subprocess.run(
        ["git", "show", f"{rev}:bot/store/embeddings.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "embeddings_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("embeddings_at_rev", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MiniLMEmbedder()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="HEAD", help="the git revision to compare with")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    max_chars = Settings(seed_demo_history=False).max_text_chars
    every = [embed_text(i, max_chars) for i in scaled_history(100_000)]
    texts = every[7 :: len(every) // args.n][: args.n]
    print(f"100,000 texts, {len(set(every)):,} distinct; sample {len(texts):,}, {len(set(texts)):,} distinct")
    both = {args.against: _embedder_at(args.against), "this checkout": embeddings.MiniLMEmbedder()}
    vectors = {}
    for e in both.values():
        e.embed(texts[:20])
    for _ in range(args.rounds):
        for name, e in both.items():
            t, c = time.perf_counter(), time.process_time()
            vectors[name] = e.embed(texts)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            print(f"{name:>14}: {len(texts) / wall:4.0f} texts/s, {1000 * cpu / len(texts):5.1f} ms CPU per text, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    a, b = vectors.values()
    print(f"largest difference between the two: {np.abs(a - b).max():.1e}")


if __name__ == "__main__":
    main()
