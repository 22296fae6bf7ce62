"""The added cost on the posting path of "why now": one ticket's context lookup (recent changes to its service,
other tickets firing there) at 100,000 stored changes and 10,000 open tickets, on SQLite (target: < 5 ms p50).

The rows are written in bulk (executemany), not through the intake: this measures the lookup, not the load.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from benchmarks.core import lat
from bot.clock import utcnow
from bot.config import Settings
from bot.delivery.context import ContextLookup
from bot.store.schema import changes, tickets
from bot.store.sql import Store
from bot.store.tickets import TicketState

KINDS = ("deploy", "config", "flag", "model", "infra")


def _fill(store: Store, n_changes: int, n_tickets: int, services: int, rng: random.Random) -> list[str]:
    now = utcnow()
    span = timedelta(days=14).total_seconds()  # change_retention_days: what a busy CI leaves in the table
    rows = [{"source": "change", "id": f"c{i}", "service": f"svc-{rng.randrange(services)}", "kind": KINDS[i % 5],
             "summary": f"build {i}", "at": now - timedelta(seconds=rng.random() * span), "link": None,
             "author": "ci-bot", "environment": "production", "received_at": now} for i in range(n_changes)]  # fmt: skip
    ticket_rows, keys = [], []
    for i in range(n_tickets):
        svc, at = f"svc-{rng.randrange(services)}", now - timedelta(seconds=rng.random() * 86_400)
        key = f"bench:{i}"
        t = {
            "id": key,
            "title": f"alert {i}",
            "service": svc,
            "source": "bench",
            "created_at": at.isoformat(),
        }
        ticket_rows.append({"key": key, "ticket": t, "shown": t, "channel": f"#ch-{i % 20}", "route": f"#ch-{i % 20}",
                            "status": TicketState.DRAFTED.value, "kind": "ticket", "resolved": 0, "service": svc,
                            "created_at": at, "updated_at": at, "priority": 1})  # fmt: skip
        keys.append(key)
    with store.engine.begin() as c:
        for lo in range(0, len(rows), 10_000):
            c.execute(insert(changes), rows[lo : lo + 10_000])
        for lo in range(0, len(ticket_rows), 5_000):
            c.execute(insert(tickets), ticket_rows[lo : lo + 5_000])
    return keys


def bench_context(n_changes: int = 100_000, n_tickets: int = 10_000, lookups: int = 500,
                  services: int = 200, data_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """p50/p95 of the context lookup of `lookups` stored tickets (what posting adds to each post)."""
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{(data_dir or Path(tmp)) / 'context-bench.db'}")
        t0 = time.perf_counter()
        keys = _fill(store, n_changes, n_tickets, services, rng)
        fill_s = time.perf_counter() - t0
        lookup = ContextLookup(Settings(seed_demo_history=False, llm_backend="none"), store.changes)
        sample = [store.get(k) for k in rng.sample(keys, min(lookups, len(keys)))]
        for row in sample[:20]:  # warm the connection pool and SQLite's page cache
            assert row is not None
            lookup.for_row(row)
        ms, listed = [], 0
        for row in sample:
            assert row is not None
            t = time.perf_counter()
            ctx = lookup.for_row(row)
            ms.append((time.perf_counter() - t) * 1000)
            listed += len(ctx.changes) + len(ctx.concurrent) if ctx else 0
        store.engine.dispose()
    return {"changes": n_changes, "open_tickets": n_tickets, "services": services, "lookups": len(ms),
            "lookup_ms": lat(ms), "fill_s": fill_s, "listed_per_lookup": listed / max(1, len(ms))}  # fmt: skip


if __name__ == "__main__":
    r = bench_context()
    print(f"context lookup at {r['changes']:,} changes, {r['open_tickets']:,} open tickets: "
          f"p50 {r['lookup_ms']['p50']:.2f} ms, p95 {r['lookup_ms']['p95']:.2f} ms")  # fmt: skip
