"""History importers end to end against the stand-ins (testkit/incident_apis.py) on 127.0.0.1: records read,
converted, embedded and written into a fresh embedded Chroma, seconds, and what was skipped by reason. Each
source has a few records with no text (and Opsgenie one with an unreadable time) mixed in, one 429 with
Retry-After: 1 and one 503 on the way, and then a second run that finds every record unchanged.

    .venv/bin/python -m benchmarks.importers [--n 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from bot.config import Settings
from bot.intake.importers import IMPORTERS, ImportOptions
from bot.intake.importers.run import ImportReport, Outcome, run_import
from bot.store.factory import open_history
from testkit.incident_apis import OpsgenieAPI, PagerDutyAPI, opsgenie_history, pagerduty_history

POSTMORTEM = """---
title: "Incident {i}: chat completions returned 500s"
date: 2024-03-01T14:05:00-05:00
service: chat-api
---
## Summary
Chat completions for gpt-4o failed with HTTP 500 in shard {i}.

## Impact
7% of requests failed.

## Resolution
Rolled back the router config.
"""


def _no_text(every: int, *keys: str) -> Any:
    def vary(i: int, rec: dict[str, Any]) -> None:
        if i % every == every - 1:
            for k in keys:
                rec[k] = ""

    return vary


def _timed(
    name: str, settings: Settings, path: Path | None = None
) -> tuple[ImportReport, float, ImportReport]:
    store = open_history(settings, f"bench-{name}")
    options = ImportOptions(settings=settings, path=path)
    t = time.perf_counter()
    report = run_import(IMPORTERS[name], options, store)
    seconds = time.perf_counter() - t
    again = run_import(IMPORTERS[name], options, store)  # reads everything again, writes (embeds) nothing
    return report, seconds, again, time.perf_counter() - t - seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    n = ap.parse_args().n
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(data_dir=Path(tmp) / "data", seed_demo_history=False, llm_backend="none")

        incidents, notes, logs = pagerduty_history(n, _no_text(200, "title", "summary", "description"))
        for iid in [i["id"] for i in incidents if not i["title"]]:
            logs[iid][0]["channel"] = {"type": "api"}
        pd = PagerDutyAPI("t", incidents, notes, logs)
        pd.fail("/incidents", 429, retry_after="1", offset="500")
        pd.fail("/incidents/PI00010/notes", 503)
        s = base.model_copy(update={"pagerduty_api_url": pd.url, "pagerduty_api_token": SecretStr("t")})
        rows.append(("pagerduty", n, *_timed("pagerduty", s)))
        pd.close()

        alerts, og_notes = opsgenie_history(n, _no_text(250, "message", "description"))
        alerts[7]["createdAt"] = "2024-13-45T99:00:00Z"
        og = OpsgenieAPI("k", alerts, og_notes)
        og.fail("/v2/alerts", 429, retry_after="1", offset="500")
        og.fail("/v2/alerts/70413a06-38d6-4c85-92b8-000000000010/notes", 503)
        s = base.model_copy(update={"opsgenie_api_url": og.url, "opsgenie_api_key": SecretStr("k")})
        rows.append(("opsgenie", n, *_timed("opsgenie", s)))
        og.close()

        folder = Path(tmp) / "postmortems"
        folder.mkdir()
        m = max(n // 5, 1)
        for i in range(m):
            text = POSTMORTEM.format(i=i) if i % 50 != 49 else "# Draft\n\n## Summary\n\n"
            (folder / f"pm-{i:05d}.md").write_text(text)
        rows.append(("markdown", m, *_timed("markdown", base, folder)))

    table = Table(
        "source", "records served", "imported", "seconds", "per second", "skipped by reason", "2nd run"
    )
    for name, served, report, seconds, again, seconds2 in rows:
        skipped = "; ".join(f"{r} ({c})" for r, c in report.reasons().most_common()) or "-"
        table.add_row(
            name,
            f"{served:,}",
            f"{report.counts[Outcome.IMPORTED]:,}",
            f"{seconds:.1f}",
            f"{served / seconds:.0f}",
            skipped,
            f"unchanged {again.counts[Outcome.UNCHANGED]:,}, imported {again.counts[Outcome.IMPORTED]}",
            f"{seconds2:.1f}",
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
