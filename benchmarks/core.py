"""Benchmarks of the triage core: import throughput, retrieval latency (with a NumPy floor), triage latency.

History is the bundled demo history (939 real public incidents), scaled up by variation where it runs out:
each copy gets a new id, another service and a varied first sentence, so texts and vectors differ.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from bot.models import HistoricalIncident, Ticket
from bot.store.demo import demo_history
from bot.store.embeddings import get_embedder
from bot.store.factory import open_history
from bot.store.vectors import VectorStore, embed_text
from bot.taxonomy import Taxonomy
from bot.triage.llm import build_chat_model
from bot.triage.pipeline import Triager
from bot.triage.trainer import Trainer, trainer_for

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
        update = {
            "id": f"{inc.id}#v{copy}",
            "text": f"{VARIATIONS[copy % len(VARIATIONS)]} {inc.text} (report {copy})",
            "service": SERVICES[(i + copy) % len(SERVICES)],
        }
        out.append(inc.model_copy(update=update))
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else 0.0


def lat(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99)}


def bench_import(
    settings: Settings, sizes: list[int]
) -> tuple[dict[str, float], dict[int, VectorStore], np.ndarray, dict[str, Any]]:
    """Incidents/s at each size, embedding included, each into a fresh collection; and its parts: embedding
    (wall and CPU time: the machine may be shared) and Chroma's write. Returns the stores built and the vectors of
    the largest, so retrieval can reuse them."""
    out, stores, parts = {}, {}, {}
    vectors = np.zeros((0, 384), dtype=np.float32)
    get_embedder().embed(["warm-up"])  # the session loads once per process, not per import
    for n in sizes:
        incidents = scaled_history(n)
        store = open_history(settings, collection=f"bench-import-{n}")
        texts = [embed_text(i, settings.max_text_chars) for i in incidents]
        t0, c0 = time.perf_counter(), time.process_time()
        vecs = get_embedder().embed(texts)
        t1, c1 = time.perf_counter(), time.process_time()
        store.upsert(incidents, embeddings=vecs)
        t2 = time.perf_counter()
        out[str(n)] = n / (t2 - t0)
        parts[str(n)] = {
            "embed_per_s": n / (t1 - t0),
            "embed_cpu_ms_per_incident": 1000 * (c1 - c0) / n,
            "distinct_texts": len(set(texts)),
            "write_per_s": n / (t2 - t1),
            "load_average": os.getloadavg()[0],
        }
        stores[n] = store
        vectors = vecs
    return out, stores, vectors, parts


def bench_retrieval(
    settings: Settings, sizes: list[int], stores: dict[int, VectorStore], vectors: np.ndarray, n_queries: int
) -> dict[str, Any]:
    """Search latency at each size: by text (embedding included), by vector, with a service filter; and the floor,
    an exact NumPy search over the same vectors."""
    incidents = scaled_history(max(sizes))
    queries = [i.body[:300] for i in incidents[:: max(1, len(incidents) // n_queries)][:n_queries]]
    qvecs = get_embedder().embed(queries)
    out: dict[str, Any] = {}
    for n in sizes:
        store = stores.get(n)
        if store is None:  # build from the vectors already computed: retrieval, not import, is measured here
            store = open_history(settings, collection=f"bench-retrieval-{n}")
            if store.count() != n:
                store.upsert(incidents[:n], embeddings=vectors[:n])
        store.search(queries[0], 5)  # warm-up
        t = time.perf_counter()
        store.search(qvecs[0], 5, service="chat")  # Chroma's where filter while the service's index is read
        first_filtered = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        if index_service := getattr(store, "index_service", None):  # ChromaHistory: wait for that index
            index_service("chat")
        index_s = time.perf_counter() - t
        by_text, by_vec, filtered, filtered_vec = [], [], [], []
        for q, v in zip(queries, qvecs, strict=True):
            t = time.perf_counter()
            store.search(q, 5)
            by_text.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            store.search(v, 5)
            by_vec.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            store.search(q, 5, service="chat")
            filtered.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            store.search(v, 5, service="chat")
            filtered_vec.append((time.perf_counter() - t) * 1000)
        mat = vectors[:n]
        floor = []
        for v in qvecs:
            t = time.perf_counter()
            scores = mat @ v
            top = np.argpartition(-scores, 5)[:5]
            top[np.argsort(-scores[top])]
            floor.append((time.perf_counter() - t) * 1000)
        out[str(n)] = {
            "by_text_ms": lat(by_text),
            "by_vector_ms": lat(by_vec),
            "filtered_by_text_ms": lat(filtered),
            "filtered_by_vector_ms": lat(filtered_vec),
            "filtered_first_ms": first_filtered,
            "service_index_s": index_s,
            "numpy_floor_ms": lat(floor),
        }
    return out


def bench_training(settings: Settings, store: VectorStore) -> tuple[dict[str, Any], Trainer]:
    """Retraining the learned decision from the whole history (what a verdict triggers, off the posting path)."""
    trainer = trainer_for(settings, store, Taxonomy.load(settings.taxonomy_path))
    t0 = time.perf_counter()
    incs, vecs = store.all()  # the trainer's own read (in pages: bot/store/chroma.py)
    read_s = time.perf_counter() - t0
    model = trainer.train_now(incs, vecs)
    assert model is not None
    return {
        "n": len(incs),
        "read_s": read_s,
        "train_s": model.train_s,
        "fields": sorted(model.fields),
    }, trainer


def bench_triage(
    settings: Settings, store: VectorStore, n: int, trainer: Trainer | None = None
) -> dict[str, Any]:
    """Bot overhead without the LLM (retrieval, prompt, validation, learned decision, message building) and end
    to end with the default local model."""
    from bot.delivery.slack.blocks import draft_blocks

    triager = Triager(settings, store, build_chat_model(settings), trainer=trainer)
    tickets = [
        Ticket(id=f"b{i}", title=inc.title, text=inc.text) for i, inc in enumerate(scaled_history(n + 1)[1:])
    ]
    triager.triage(tickets[0])  # warm-up: loads the model
    total, overhead, tokens = [], [], []
    for t in tickets:
        t0 = time.perf_counter()
        d = triager.triage(t)
        draft_blocks(t.id, t, d, triager.taxonomy, "llm")
        elapsed = time.perf_counter() - t0
        total.append(elapsed * 1000)
        overhead.append((elapsed - d.llm.latency_s) * 1000)
        tokens.append(d.llm.prompt_tokens + d.llm.completion_tokens)
    return {
        "model": d.llm.model,
        "end_to_end_ms": lat(total),
        "overhead_excl_llm_ms": lat(overhead),
        "tokens_per_triage": float(np.mean(tokens)),
    }


def bench_backends(data_dir: Path, sizes: list[int], n_queries: int) -> dict[str, Any]:
    """The same searches (`bench_retrieval`) on the embedded Chroma and on a Chroma server (`chroma run` on
    127.0.0.1, started here, stopped after), over the same incidents and vectors, embedded once. Also the time to
    write them (vectors precomputed, so the store's own cost)."""
    from benchmarks.backends import ChromaServer

    incidents = scaled_history(max(sizes))
    max_chars = Settings(data_dir=data_dir, seed_demo_history=False).max_text_chars
    t0 = time.perf_counter()
    vectors = get_embedder().embed([embed_text(i, max_chars) for i in incidents])
    out: dict[str, Any] = {"embed_s": time.perf_counter() - t0, "n_queries": n_queries}
    for backend in ("embedded", "server"):
        server = ChromaServer(data_dir / "chroma-server") if backend == "server" else None
        try:
            where = {"chroma_host": "127.0.0.1", "chroma_port": server.port} if server else {}
            settings = Settings(data_dir=data_dir / backend, seed_demo_history=False, **where)
            stores, write_per_s = {}, {}
            for n in sizes:
                store = open_history(settings, collection=f"bench-backend-{n}")
                t = time.perf_counter()
                store.upsert(incidents[:n], embeddings=vectors[:n])
                write_per_s[str(n)] = n / (time.perf_counter() - t)
                stores[n] = store
            out[backend] = {
                "write_per_s": write_per_s,
                "retrieval": bench_retrieval(settings, sizes, stores, vectors, n_queries),
            }
        finally:
            if server:
                server.stop()
    return out


def history_vectors(settings: Settings, n: int, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors for `scaled_history(n)` without embedding every text: the base incidents and their first five
    copies (one for each varied first sentence) are embedded for real; every later copy is the real vector of the
    copy with the same first sentence plus a small random perturbation, normalised, sized so that it is as similar
    to that copy as a real later copy is (measured here on a sample of real later copies, embedded too).

    Chroma's HNSW search costs by the number and dimension of vectors, not their meaning; what the meaning does
    change is how many near-duplicates a search meets (retrieval widens its net past them), and that is kept:
    base, varied and repeated copies keep their real similarity structure."""
    base = len(demo_history())
    incidents = scaled_history(n)
    texts = [embed_text(i, settings.max_text_chars) for i in incidents]
    real = min(n, 6 * base)
    t0 = time.perf_counter()
    vectors = np.empty((n, 384), dtype=np.float32)
    vectors[:real] = get_embedder().embed(texts[:real])
    info: dict[str, Any] = {"embedded_for_real": real, "perturbed": n - real}
    if n > real:
        # Copy c >= 6 repeats the first sentence of copy ((c - 1) % 5) + 1 (`VARIATIONS[c % 5]`).
        def rep(i: int) -> int:
            return (((i // base) - 1) % 5 + 1) * base + i % base

        sample = list(range(real, min(n, real + base)))[:: max(1, min(n - real, base) // 100)]
        measured = get_embedder().embed([texts[i] for i in sample])
        cos = float(np.mean(np.sum(measured * vectors[[rep(i) for i in sample]], axis=1)))
        # A unit vector plus N(0, sigma^2) per dimension, normalised, is at cos ~ 1 / sqrt(1 + d sigma^2) from it.
        sigma = float(np.sqrt(max(1.0 / cos**2 - 1.0, 1e-8) / vectors.shape[1]))
        rng = np.random.default_rng(seed)
        for start in range(real, n, 10_000):
            idx = np.arange(start, min(n, start + 10_000))
            v = vectors[[rep(int(i)) for i in idx]] + rng.normal(0.0, sigma, (len(idx), vectors.shape[1]))
            vectors[idx] = v / np.linalg.norm(v, axis=1, keepdims=True)
        synth = float(np.mean(np.sum(vectors[sample] * vectors[[rep(i) for i in sample]], axis=1)))
        info.update(real_copy_cos=cos, perturbed_copy_cos=synth, sigma=sigma, sample=len(sample))
    info["embed_s"] = time.perf_counter() - t0
    return vectors, info


def counting_searches(store: VectorStore) -> list[int]:
    """Counts the store's searches from here on (retrieval widens its net past near-duplicates)."""
    calls = [0]
    search = store.search

    def counted(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        return search(*args, **kw)

    store.search = counted  # type: ignore[method-assign]
    return calls


def run_triage_only(data_dir: Path, sizes: list[int], quick: bool) -> dict[str, Any]:
    """`incibot bench --triage-only --history N`: retrieval, retraining and the triage overhead at N incidents
    without embedding all N (`history_vectors`); the query tickets are embedded for real. The overhead is measured
    with the LLM off (everything a triage does but the model call: prompt building and answer checks aside); with
    an LLM configured, a few triages with it on give the overhead around it too (its own call subtracted)."""
    settings = Settings(data_dir=data_dir, seed_demo_history=False)
    incidents = scaled_history(max(sizes))
    vectors, how = history_vectors(settings, max(sizes))
    out: dict[str, Any] = {"sizes": sizes, "vectors": how, "write_s": {}, "training": {}, "triage": {}}
    stores = {}
    for n in sizes:
        stores[n] = open_history(settings, collection=f"bench-triage-{n}")
        t = time.perf_counter()
        stores[n].upsert(incidents[:n], embeddings=vectors[:n])
        out["write_s"][str(n)] = time.perf_counter() - t
    out["retrieval"] = bench_retrieval(settings, sizes, stores, vectors, 50 if quick else 200)
    llm_off = settings.model_copy(update={"llm_backend": "none"})
    trainer = None
    for n in sizes:
        out["training"][str(n)], trainer = bench_training(settings, stores[n])
        searches = counting_searches(stores[n])
        tickets = 10 if quick else 50
        out["triage"][str(n)] = bench_triage(llm_off, stores[n], tickets, trainer)
        out["triage"][str(n)]["searches_per_triage"] = searches[0] / (tickets + 1)  # + the warm-up
    if settings.llm_backend != "none" and not quick:
        out["triage_with_llm"] = bench_triage(settings, stores[max(sizes)], 3, trainer)
    return out


def run_core(data_dir: Path, quick: bool) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, seed_demo_history=False)
    import_sizes = [2_000] if quick else [2_000, 20_000, 100_000]
    retrieval_sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    imports, stores, vectors, parts = bench_import(
        settings, sorted(set(import_sizes) | {max(retrieval_sizes)})
    )
    results: dict[str, Any] = {"import_per_s": {k: v for k, v in imports.items() if int(k) in import_sizes}}
    results["import_parts"] = {k: v for k, v in parts.items() if int(k) in import_sizes}
    results["retrieval"] = bench_retrieval(settings, retrieval_sizes, stores, vectors, 50 if quick else 200)
    results["training"], trainer = bench_training(settings, stores[10_000])
    results["triage"] = bench_triage(settings, stores[max(retrieval_sizes)], 3 if quick else 10, trainer)
    return results


def main() -> None:
    """Run in a child process, so the serving benchmark can open the same store afterwards."""
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backends", action="store_true", help="only search on embedded vs server Chroma")
    ap.add_argument("--triage-only", type=str, metavar="N[,N]", help="only retrieval, training, triage at N")
    args = ap.parse_args()
    if args.triage_only:
        result = run_triage_only(
            args.data_dir, sorted({int(x) for x in args.triage_only.split(",")}), args.quick
        )
    elif args.backends:
        result = bench_backends(
            args.data_dir, [1_000] if args.quick else [1_000, 10_000], 50 if args.quick else 200
        )
    else:
        result = run_core(args.data_dir, args.quick)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
