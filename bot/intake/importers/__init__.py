"""History importers, one module each, registered here: `incibot history import --from <name>` reads the source
with the importer's `pages` and writes through `run.run_import` (upsert by id, a checkpoint per page).

To add one: write `bot/intake/importers/<name>.py` with a class having `name`, `needs_path`, `credential` and
`pages(options, cursor)` yielding `Page`s of `HistoricalIncident` or `Skipped` records (keep the triage-time
`text` apart from what was learnt later: `resolution`, `later_text`); list it in `IMPORTERS`; its base URL and
credential are settings; test it against a stand-in in `testkit/incident_apis.py` with payloads under
`tests/payloads/<name>-api/` (provenance in that folder's README). Its command and credential go in
docs/history.md.
"""

from __future__ import annotations

from bot.intake.importers.base import Importer, ImportOptions, Page, Skipped, SourceError
from bot.intake.importers.incidentio import IncidentIoImporter
from bot.intake.importers.jira import JiraImporter
from bot.intake.importers.markdown import MarkdownImporter
from bot.intake.importers.opsgenie import OpsgenieImporter
from bot.intake.importers.pagerduty import PagerDutyImporter

__all__ = ["IMPORTERS", "ImportOptions", "Importer", "Page", "Skipped", "SourceError", "importer"]

# In this order in error messages and listings.
IMPORTERS: dict[str, Importer] = {
    i.name: i
    for i in (
        MarkdownImporter(),
        PagerDutyImporter(),
        OpsgenieImporter(),
        JiraImporter(),
        IncidentIoImporter(),
    )
}


def importer(name: str) -> Importer:
    if name not in IMPORTERS:
        raise SourceError(f"unknown source {name!r}; use one of: {', '.join(IMPORTERS)}")
    return IMPORTERS[name]
