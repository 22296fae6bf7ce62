"""`incibot bench [--quick]`: every benchmark, one table, one JSON file. Not a test: nothing here can fail CI."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.context import bench_context
from benchmarks.serving import bench_end_to_end, bench_replicas, bench_storm

TARGETS = {
    "retrieval p50 at the largest size, embedding included": "<= 20 ms",
    "bot overhead excluding the LLM, p50": "<= 100 ms",
    "webhook to first Slack post": "<= 2 s",
    "storm": "0 lost, 0 duplicated, grouping visible, peak RSS < 1.5 GB",
    "import": ">= 200 incidents/s",
    "import at 100k, embedding": ">= 400 incidents/s on 2 cores",
    "search filtered by service at 100k, p50": "< 20 ms",
    "retraining at 10k incidents": "< 5 s",
    "context lookup (changes + concurrent alerts) at 100k changes, 10k open tickets, SQLite": "< 5 ms p50",
}


def _ms(d: dict[str, float]) -> str:
    return f"p50 {d['p50']:.1f}, p95 {d['p95']:.1f}, p99 {d['p99']:.1f} ms"


def _embeds(p: dict[str, Any]) -> str:
    return (f"{p['embed_per_s']:.0f} embeds/s ({p['embed_cpu_ms_per_incident']:.1f} ms CPU each, "
            f"{p['distinct_texts']:,} distinct texts, load {p['load_average']:.1f}); "
            f"Chroma write {p['write_per_s']:.0f}/s")  # fmt: skip


def _retrieval_rows(t: Table, v: dict[str, Any]) -> None:
    t.add_row("  by vector (embedding excluded)", _ms(v["by_vector_ms"]))
    t.add_row("  with a service filter", _ms(v["filtered_by_text_ms"]))
    if "filtered_by_vector_ms" in v:
        t.add_row("  with a service filter, by vector", _ms(v["filtered_by_vector_ms"]))
        t.add_row("  first search of that service (Chroma's filter, its index read meanwhile)",
                  f"{v['filtered_first_ms']:.0f} ms; reading the index {v.get('service_index_s', 0):.1f} s")  # fmt: skip
    t.add_row("  NumPy exact search (floor)", _ms(v["numpy_floor_ms"]))


def _s(d: dict[str, float]) -> str:
    return f"p50 {d['p50']:.2f}, p95 {d['p95']:.2f} s"


def table(r: dict[str, Any]) -> Table:
    t = Table(title=f"incibot benchmarks ({'quick' if r['quick'] else 'full'}, {r['seconds']:.0f} s)")
    t.add_column("measure")
    t.add_column("value")
    for n, v in r["core"]["import_per_s"].items():
        t.add_row(f"import {int(n):,} incidents (embedding included)", f"{v:.0f} incidents/s")
        if p := r["core"].get("import_parts", {}).get(n):
            t.add_row("  of which embedding", _embeds(p))
    for n, v in r["core"]["retrieval"].items():
        t.add_row(f"search top-5 in {int(n):,}, embedding included", _ms(v["by_text_ms"]))
        _retrieval_rows(t, v)
    tr = r["core"]["training"]
    t.add_row(f"retrain the learned decision on {tr['n']:,} incidents",
              f"{tr['train_s']:.2f} s (+ {tr['read_s']:.2f} s reading the history)")  # fmt: skip
    tri = r["core"]["triage"]
    t.add_row("bot overhead excluding the LLM", _ms(tri["overhead_excl_llm_ms"]))
    t.add_row(f"triage end to end ({tri['model']})", _ms(tri["end_to_end_ms"]))
    t.add_row("tokens per triage", f"{tri['tokens_per_triage']:.0f}")
    e2e = r["end_to_end"]
    t.add_row("webhook -> first Slack post (HTTP, 127.0.0.1)", _s(e2e["webhook_to_first_post_s"]))
    t.add_row("webhook -> LLM edit", _s(e2e["webhook_to_llm_edit_s"]))
    model_rss = e2e.get("model_server_peak_rss_mb")
    t.add_row(
        f"serving peak RSS, {r['history_size']:,} incidents in history",
        f"{e2e['serving_peak_rss_mb']:.0f} MB bot"
        + (f" + {model_rss:.0f} MB local model server" if model_rss else ""),
    )
    b = r["storm"]
    t.add_row(f"storm: {b['tickets']} tickets over {b['over_s']:.0f} s (HTTP)",
              f"{b['top_level_posts']} posts + {b['thread_replies']} thread replies listing {b['grouped_tickets']} "
              f"grouped tickets; to own post {_s(b['to_own_post_s'])}, to thread listing {_s(b['to_thread_listing_s'])}")  # fmt: skip
    t.add_row(
        "  accepted / refused / lost / duplicated / peak RSS",
        f"{b['accepted']} / {b['refused']} / {b['lost']} / {b['duplicated']} / {b['peak_rss_mb']:.0f} MB",
    )
    m = b["metrics_scrape"]
    t.add_row(
        "  /metrics scraped while the storm drains",
        f"HTTP {m['status']} in {m['seconds']:.3f} s, {m['lines']} lines",
    )
    return t


def backends_table(r: dict[str, Any]) -> Table:
    b = r["backends"]
    t = Table(title=f"incibot search, embedded vs server Chroma ({'quick' if r['quick'] else 'full'}, "
                    f"{b['n_queries']} queries, {r['seconds']:.0f} s)")  # fmt: skip
    t.add_column("measure")
    t.add_column("embedded (PersistentClient)")
    t.add_column("server (chroma run, 127.0.0.1)")
    emb, srv = b["embedded"], b["server"]
    for n in emb["retrieval"]:
        t.add_row(f"write {int(n):,} incidents (vectors precomputed)",
                  f"{emb['write_per_s'][n]:.0f} incidents/s", f"{srv['write_per_s'][n]:.0f} incidents/s")  # fmt: skip
        for key, what in [("by_text_ms", f"search top-5 in {int(n):,}, embedding included"),
                          ("by_vector_ms", "  by vector (embedding excluded)"),
                          ("filtered_by_text_ms", "  with a service filter"),
                          ("filtered_by_vector_ms", "  with a service filter, by vector")]:  # fmt: skip
            t.add_row(what, _ms(emb["retrieval"][n][key]), _ms(srv["retrieval"][n][key]))
    t.add_row("embedding the incidents (once, for both)", f"{b['embed_s']:.0f} s", "")
    return t


def run_backends(
    quick: bool = False, console: Console | None = None, out_dir: Path = Path("bench-results")
) -> dict[str, Any]:
    """Only the search, on both Chroma backends, side by side (`incibot bench --backends`)."""
    console = console or Console()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="incibot-bench-") as tmp:
        out_json = Path(tmp) / "backends.json"
        console.print("[dim]search: embedded Chroma, then a Chroma server…[/dim]")
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.core",
            "--backends",
            "--data-dir",
            tmp,
            "--out",
            str(out_json),
        ]
        subprocess.run(cmd + (["--quick"] if quick else []), check=True)
        backends = json.loads(out_json.read_text())
    result = {"quick": quick, "backends": backends, "seconds": time.monotonic() - t0}
    console.print(backends_table(result))
    return _save(result, out_dir / ("bench-backends-quick.json" if quick else "bench-backends.json"), console)


def triage_only_table(r: dict[str, Any]) -> Table:
    c = r["core"]
    v = c["vectors"]
    t = Table(title=f"incibot retrieval, retraining and triage overhead at {', '.join(f'{n:,}' for n in c['sizes'])} "
                    f"incidents ({'quick' if r['quick'] else 'full'}, {r['seconds']:.0f} s)")  # fmt: skip
    t.add_column("measure")
    t.add_column("value")
    t.add_row("history vectors", f"{v['embedded_for_real']:,} embedded for real in {v['embed_s']:.0f} s"
              + (f", {v['perturbed']:,} perturbed copies of them (cos to the copy repeated {v['perturbed_copy_cos']:.4f};"
                 f" a real later copy {v['real_copy_cos']:.4f})" if v["perturbed"] else ""))  # fmt: skip
    for n, rv in c["retrieval"].items():
        t.add_row(f"write {int(n):,} incidents (vectors precomputed)", f"{c['write_s'][n]:.1f} s")
        t.add_row(f"search top-5 in {int(n):,}, embedding included", _ms(rv["by_text_ms"]))
        _retrieval_rows(t, rv)
        tr, tri = c["training"][n], c["triage"][n]
        t.add_row(f"retrain the learned decision on {tr['n']:,} incidents",
                  f"{tr['train_s']:.2f} s (+ {tr['read_s']:.2f} s reading the history)")  # fmt: skip
        t.add_row(f"bot overhead, LLM off, {int(n):,} in history", _ms(tri["overhead_excl_llm_ms"]))
        t.add_row("  Chroma searches per triage", f"{tri['searches_per_triage']:.1f}")
    if w := c.get("triage_with_llm"):
        t.add_row(f"bot overhead excluding the LLM call, LLM on ({w['model']}, 3 triages)",
                  _ms(w["overhead_excl_llm_ms"]))  # fmt: skip
        t.add_row("  triage end to end", _ms(w["end_to_end_ms"]))
    return t


def run_triage_only(
    sizes: list[int],
    quick: bool = False,
    console: Console | None = None,
    out_dir: Path = Path("bench-results"),
) -> dict[str, Any]:
    """`incibot bench --triage-only --history 100000`: retrieval, retraining and triage overhead at that history
    size, without embedding every incident (`benchmarks.core.history_vectors`)."""
    console = console or Console()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="incibot-bench-") as tmp:
        out_json = Path(tmp) / "triage.json"
        console.print(f"[dim]retrieval, retraining, triage overhead at {sizes}; history vectors: the base "
                      "incidents and their first copies embedded for real, later copies perturbed from them "
                      "(search cost is by count and dimension; near-duplicates kept as similar as real ones)…[/dim]")  # fmt: skip
        cmd = [sys.executable, "-m", "benchmarks.core", "--triage-only", ",".join(map(str, sizes)),
               "--data-dir", tmp, "--out", str(out_json)]  # fmt: skip
        subprocess.run(cmd + (["--quick"] if quick else []), check=True)
        core = json.loads(out_json.read_text())
    result = {"quick": quick, "core": core, "targets": TARGETS, "seconds": time.monotonic() - t0}
    console.print(triage_only_table(result))
    name = "bench-triage-" + "-".join(map(str, sizes)) + ("-quick" if quick else "")
    return _save(result, out_dir / f"{name}.json", console)


def _save(result: dict[str, Any], path: Path, console: Console) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    console.print(f"written to {path}")
    return result


def replicas_table(runs: list[dict[str, Any]]) -> Table:
    t = Table(title="Replicas on PostgreSQL + a Chroma server: a storm burst over HTTP (LLM off)")
    for col in ("replicas", "tickets / s", "lost / doubled", "webhook -> own post p50 / p95",
                "webhook -> first delivery p50 / p95", "delivered / s", "posts + thread replies"):  # fmt: skip
        t.add_column(col)
    for r in runs:
        t.add_row(
            str(r["replicas"]), f"{r['tickets']} / {r['over_s']:.0f}", f"{r['lost']} / {r['duplicated']}",
            _s(r["webhook_to_own_post_s"]), _s(r["webhook_to_first_delivery_s"]), f"{r['delivered_per_s']:.1f}",
            f"{r['top_level_posts']} + {r['thread_replies']}",
        )  # fmt: skip
    return t


def run_replicas(
    counts: list[int],
    quick: bool = False,
    console: Console | None = None,
    out_dir: Path = Path("bench-results"),
) -> dict[str, Any]:
    """`incibot bench --replicas 1,2`: the same burst against 1, 2... `incibot serve` processes sharing one
    PostgreSQL database and one Chroma server (both started for the run on 127.0.0.1)."""
    console = console or Console()
    n, seconds = (100, 10.0) if quick else (300, 30.0)
    runs = []
    for count in counts:
        console.print(f"[dim]{count} replica(s): {n} tickets over {seconds:.0f} s…[/dim]")
        with tempfile.TemporaryDirectory(prefix="incibot-bench-") as tmp:
            runs.append(bench_replicas(Path(tmp), count, n, seconds))
    console.print(replicas_table(runs))
    return _save(
        {"quick": quick, "runs": runs}, out_dir / f"bench-replicas{'-quick' if quick else ''}.json", console
    )


def context_table(r: dict[str, Any]) -> Table:
    t = Table(title="Why now: the context lookup each post adds (SQLite)")
    t.add_column("measure")
    t.add_column("value")
    t.add_row(f"context lookup at {r['changes']:,} changes, {r['open_tickets']:,} open tickets, "
              f"{r['services']} services ({r['lookups']} lookups)", _ms(r["lookup_ms"]))  # fmt: skip
    t.add_row("rows listed per post (changes + concurrent)", f"{r['listed_per_lookup']:.1f}")
    t.add_row(
        "target",
        TARGETS["context lookup (changes + concurrent alerts) at 100k changes, 10k open tickets, SQLite"],
    )
    return t


def run_context(
    quick: bool = False, console: Console | None = None, out_dir: Path = Path("bench-results")
) -> dict[str, Any]:
    """`incibot bench --context`: the post's context lookup at 100,000 changes and 10,000 open tickets."""
    console = console or Console()
    console.print("[dim]context: filling SQLite, then timing lookups…[/dim]")
    r = bench_context(10_000, 1_000, 200) if quick else bench_context()
    console.print(context_table(r))
    return _save(r | {"quick": quick}, out_dir / f"bench-context{'-quick' if quick else ''}.json", console)


def run_telemetry(
    quick: bool = False, console: Console | None = None, out_dir: Path = Path("bench-results")
) -> dict[str, Any]:
    """`incibot bench --telemetry`: one ticket's read of the catalogue from a local Prometheus, and what moved."""
    from benchmarks.telemetry import bench_telemetry
    from benchmarks.telemetry import table as telemetry_table

    console = console or Console()
    console.print("[dim]telemetry: backfilling a local Prometheus, then timing reads…[/dim]")
    r = bench_telemetry(10 if quick else 50)
    console.print(telemetry_table(r))
    return _save(r | {"quick": quick}, out_dir / f"bench-telemetry{'-quick' if quick else ''}.json", console)


def run(
    quick: bool = False, console: Console | None = None, out_dir: Path = Path("bench-results")
) -> dict[str, Any]:
    console = console or Console()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="incibot-bench-") as tmp:
        data = Path(tmp)
        core_json = data / "core.json"
        console.print("[dim]core: import, retrieval, triage…[/dim]")
        cmd = [sys.executable, "-m", "benchmarks.core", "--data-dir", str(data), "--out", str(core_json)]
        subprocess.run(cmd + (["--quick"] if quick else []), check=True)
        core = json.loads(core_json.read_text())
        size = max(int(n) for n in core["retrieval"])
        collection = f"bench-import-{size}"
        console.print("[dim]serving: webhook -> post -> edit…[/dim]")
        e2e = bench_end_to_end(data, collection, 3 if quick else 10)
        console.print("[dim]serving: incident storm…[/dim]")
        storm = bench_storm(data, collection, 200 if quick else 1000, 20.0 if quick else 60.0)
        out_dir.mkdir(parents=True, exist_ok=True)
        scrape = out_dir / "metrics-during-storm.txt"  # what /metrics answered while the storm drained
        scrape.write_text((data / "metrics-during-storm.txt").read_text())
        storm["metrics_scrape"]["saved"] = str(scrape)
    console.print("[dim]context: the post's change and concurrent-alert lookup…[/dim]")
    context = bench_context(10_000, 1_000, 200) if quick else bench_context()
    result = {"quick": quick, "history_size": size, "core": core, "end_to_end": e2e, "storm": storm,
              "context": context, "targets": TARGETS, "seconds": time.monotonic() - t0}  # fmt: skip
    console.print(table(result))
    console.print(context_table(context))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("bench-quick.json" if quick else "bench.json")
    path.write_text(json.dumps(result, indent=2))
    console.print(f"written to {path}")
    return result
