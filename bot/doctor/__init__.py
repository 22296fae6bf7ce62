"""`incibot doctor`: the configuration and every configured connection checked, one line each, OK / WARN / FAIL
with the fix. Read only: nothing is posted, created or migrated. Exit 1 when anything FAILs.

One module per area: configuration (settings, files, data dir), storage (database, Chroma), llm, slack, webhooks
(senders and change sources), metrics (the catalogue, Prometheus), listen (host and port)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from rich.console import Console
from rich.markup import escape

from bot.doctor import configuration, listen, llm, metrics, slack, storage, webhooks
from bot.doctor.report import Check, Status

__all__ = ["Check", "Status", "main", "run"]

STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def run(run_llm: bool = False, environ: Mapping[str, str] | None = None) -> Iterator[Check]:
    """Every check, in order, as each finishes (some wait on the network)."""
    settings, checks = configuration.load(os.environ if environ is None else environ)
    yield from checks
    if settings is None:
        return  # nothing else can be checked without settings
    yield from configuration.files(settings)
    yield configuration.data_dir(settings)
    yield from storage.database(settings)
    yield storage.chroma(settings)
    yield from llm.checks(settings, run_local=run_llm)
    yield from slack.checks(settings)
    yield from webhooks.checks(settings)
    yield from metrics.checks(settings)
    yield listen.check(settings)


def main(console: Console, run_llm: bool = False) -> int:
    """Print each check as it finishes; the exit code: 1 if any FAILed, else 0."""
    failed = warned = 0
    for c in run(run_llm):
        failed += c.status is Status.FAIL
        warned += c.status is Status.WARN
        head, rest = c.line()[:4], c.line()[4:]
        console.print(f"[{STYLE[c.status]}]{head}[/]{escape(rest)}", highlight=False, soft_wrap=True)
    console.print(f"{failed} FAIL, {warned} WARN", highlight=False)
    return 1 if failed else 0
