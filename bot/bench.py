"""Benchmarks of the triage core: import throughput, search latency, triage latency. Not a test.

History is the bundled demo history (real public incidents), scaled up by variation where it runs out:
each copy gets a new id, a different service and a varied first sentence, so texts and vectors differ.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bot.config import Settings
from bot.demo import demo_history
from bot.history import HistoryStore
from bot.llm import build_chat_model
from bot.models import HistoricalIncident, Ticket
from bot.pipeline import Triager

VARIATIONS = [
    "Customers report",
    "Monitoring shows",
    "Users in EU see",
    "Since the morning,",
    "Intermittently,",
]
SERVICES = ["chat", "embeddings", "images", "speech", "fine-tuning", "batch", "assistants"]


def scaled_history(n: int) -> list[HistoricalIncident]:
    base = demo_history()
    out = []
    for i in range(n):
        inc = base[i % len(base)]
        copy = i // len(base)
        if copy == 0:
            out.append(inc)
            continue
        out.append(
            inc.model_copy(
                update={
                    "id": f"{inc.id}#v{copy}",
                    "text": f"{VARIATIONS[copy % len(VARIATIONS)]} {inc.text}",
                    "service": SERVICES[(i + copy) % len(SERVICES)],
                }
            )
        )
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def run(quick: bool = False, console: Console | None = None, out_dir: Path = Path("bench-results")) -> dict:
    console = console or Console()
    size = 2_000 if quick else 10_000
    n_queries = 50 if quick else 200
    n_triage = 3 if quick else 8
    results: dict = {"history_size": size}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), seed_demo_history=False)
        store = HistoryStore(settings)
        incidents = scaled_history(size)
        t0 = time.perf_counter()
        store.upsert(incidents)
        results["import_per_s"] = size / (time.perf_counter() - t0)

        queries = [i.body[:300] for i in incidents[:n_queries]]
        store.search(queries[0], 5)  # warm-up
        lat = []
        for q in queries:
            t = time.perf_counter()
            store.search(q, 5)
            lat.append((time.perf_counter() - t) * 1000)
        lat_f = []
        for q in queries:
            t = time.perf_counter()
            store.search(q, 5, service="chat")
            lat_f.append((time.perf_counter() - t) * 1000)
        results["search_ms"] = {"p50": pct(lat, 50), "p95": pct(lat, 95)}
        results["search_filtered_ms"] = {"p50": pct(lat_f, 50), "p95": pct(lat_f, 95)}

        triager = Triager(settings, store, build_chat_model(settings))
        tickets = [
            Ticket(id=f"b{i}", title=inc.title, text=inc.text) for i, inc in enumerate(incidents[:n_triage])
        ]
        triager.triage(tickets[0])  # warm-up: loads the model
        tri, overhead, tokens = [], [], []
        for t in tickets:
            d = triager.triage(t)
            tri.append(d.latency_s * 1000)
            overhead.append((d.latency_s - d.llm.latency_s) * 1000)
            tokens.append(d.llm.prompt_tokens + d.llm.completion_tokens)
        results["triage_ms"] = {"p50": pct(tri, 50), "p95": pct(tri, 95)}
        results["overhead_ms_excl_llm"] = {"p50": pct(overhead, 50), "p95": pct(overhead, 95)}
        results["tokens_per_triage"] = statistics.mean(tokens)
        results["llm_model"] = d.llm.model

    table = Table(title=f"incibot core benchmark ({size:,} incidents)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("import (embedding included)", f"{results['import_per_s']:.0f} incidents/s")
    for key, name in (("search_ms", "search top-5, embedding included"), ("search_filtered_ms", "  with service filter"),
                      ("triage_ms", f"triage end to end ({results['llm_model']})"),
                      ("overhead_ms_excl_llm", "triage overhead excluding the LLM")):  # fmt: skip
        table.add_row(name, f"p50 {results[key]['p50']:.1f} ms, p95 {results[key]['p95']:.1f} ms")
    table.add_row("tokens per triage", f"{results['tokens_per_triage']:.0f}")
    console.print(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("core-quick.json" if quick else "core.json")
    path.write_text(json.dumps(results, indent=2))
    console.print(f"written to {path}")
    return results
