"""Adapters from the labelled datasets in ../shared/datasets to HistoricalIncident records.

Each adapter keeps what was known at triage time (`title`, `text`) apart from what was learnt later
(`later_text`, `resolution`), and cleans labels as the datasets' README says. A record whose opening time is missing
or unreadable is yielded as `Skipped` (never given a made-up date: a default date puts it on the wrong side of the
time split).
"""

from __future__ import annotations

import ast
import csv
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from bot.clock import aware
from bot.intake.statuspage import IMPACT_TO_SEVERITY, LATER_STAGES, incident_from_statuspage
from bot.models import HistoricalIncident
from bot.taxonomy import Taxonomy
from bot.text import html_to_text, informative, squash

csv.field_size_limit(50_000_000)

GENAI_COMPONENTS = [
    "Playground", "API", "DALL-E", "ChatGPT", "api.anthropic.com", "claude.ai", "console.anthropic.com",
    "Character.AI", "REST API", "gRPC API", "Stable Assistant",
]  # fmt: skip
IMPACT_LEVELS = {"0": "none", "1": "minor", "2": "major", "3": "critical", "4": "maintenance"}


@dataclass(frozen=True)
class Skipped:
    """A record left out of the dataset, and why (listed in the report's `skipped`)."""

    id: str
    reason: str


# The labellers' `label_timezone` abbreviations. Azure's CST is China Standard Time: its PIRs with CST are Azure
# China's and say "CST (UTC+8)"; Google's reports are in US/Pacific (PST, PDT), as their update texts say.
TZ_COMMON = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "EST": -5, "EDT": -4}
TZ_AZURE = {**TZ_COMMON, "CST": 8}
TZ_GCP = TZ_COMMON


def label_tz(name: str | None, table: dict[str, int]) -> timezone | None:
    """The zone a label's local times are in; None when it is missing, UNKNOWN or not in `table`."""
    hours = table.get((name or "").strip().upper())
    return None if hours is None else timezone(timedelta(hours=hours))


def _dt(value: str | None, tz: timezone | None = UTC) -> datetime | None:
    """A time; one without an offset is read in `tz` (None: such a time is unusable, its zone unknown)."""
    if not value or not value.strip():
        return None
    v = value.strip().replace("Z", "+00:00")
    for fmt in ("%Y%m%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):  # strptime takes "7:26:04" too, fromisoformat not
        try:
            d = datetime.strptime(v, fmt)
            break
        except ValueError:
            pass
    else:
        try:
            d = datetime.fromisoformat(v)
        except ValueError:
            return None  # "UNKNOWN", "20/12/2016 23:50:00" (day or month first?): not guessed
    if d.tzinfo is not None:
        return aware(d)
    return d.replace(tzinfo=tz) if tz is not None else None


# ---- genai-status ---------------------------------------------------------------------------------------------
def genai_status(path: Path) -> Iterator[HistoricalIncident | Skipped]:
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            created = _dt(row["start_timestamp"]) or _dt(row["investigating_timestamp"])
            if created is None:
                yield Skipped(f"genai:{row['incident_id']}", "no readable start time")
                continue
            impact = IMPACT_LEVELS.get(row["incident_impact_level"].strip())
            components = [c for c in GENAI_COMPONENTS if row.get(c, "0").strip() in ("1", "1.0")]
            later = [row.get(f"{s}_description", "") for s in LATER_STAGES if row.get(f"{s}_flag") == "1"]
            labels: dict[str, list[str]] = {}
            if impact:
                labels["severity"] = [IMPACT_TO_SEVERITY[impact]]
            if components:
                labels["component"] = components
            yield HistoricalIncident(
                id=f"genai:{row['incident_id']}",
                title=row["Incident_Title"].strip(),
                # Triage time: only the first ("investigating") update, if the page had one.
                text=squash(row.get("investigating_description", ""))
                if row.get("investigating_flag") == "1"
                else "",
                service=row["provider"].strip(),
                component=components[0] if components else None,
                source="genai-status",
                created_at=created,
                resolved_at=_dt(row.get("close_timestamp")),
                labels=labels,
                resolution="\n".join(informative(later)),
                later_text="\n".join(squash(x) for x in later if x),
                raw={"impact": impact},
            )


# ---- cloud-labeled (Azure, GCP) -------------------------------------------------------------------------------
SYMPTOM_ALIASES = {"UNVAIL": "UNAVIL"}


def clean_multi(value: str) -> list[str]:
    out = []
    for part in (value or "").split(","):
        p = part.strip().upper()
        p = SYMPTOM_ALIASES.get(p, p)
        if p and p != "UNKNOWN" and p not in out:
            out.append(p)
    return sorted(out)


def clean_single(value: str) -> list[str]:
    v = (value or "").strip().upper()
    return [] if v in ("", "UNKNOWN") else [v]


def _cloud_labels(row: dict[str, str]) -> dict[str, list[str]]:
    labels = {
        "symptom": clean_multi(row.get("label_user_symptom_category", "")),
        "root_cause": clean_single(row.get("label_root_cause_category", "")),
        "service_category": [s] if (s := (row.get("label_service_category") or "").strip().lower()) else [],
    }
    return {k: v for k, v in labels.items() if v and v != ["unknown"]}


_AZURE_SECTIONS = re.compile(
    # "What went wrong, and why?" is how later reviews spell it: missed, their root cause read as triage-time text.
    r"(What happened\?|What went wrong,? and why\?|How did we respond\?|"
    r"How are we making incidents like this less likely\?|How can customers make incidents like this less impactful\?|"
    r"How can we make our incident communications more useful\?|Summary of Impact:|Root Cause:|Mitigation:|"
    r"Next Steps:|Provide Feedback:)"
)


def azure_sections(description_html: str) -> tuple[str, str, dict[str, str]]:
    """(title, text before the first section, {section heading: text})."""
    text = html_to_text(description_html)
    parts = _AZURE_SECTIONS.split(text)
    head, sections = parts[0], {}
    for i in range(1, len(parts) - 1, 2):
        sections[parts[i]] = squash(parts[i + 1])
    head_lines = [ln.strip() for ln in head.splitlines() if ln.strip()]
    title = next((ln for ln in head_lines if not re.fullmatch(r"[\d/]+", ln) and "Tracking ID" not in ln), "")
    return title, head, sections


def azure(path: Path) -> Iterator[HistoricalIncident | Skipped]:
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), 1):
            title, _, sec = azure_sections(row["description"])
            happened = sec.get("What happened?") or sec.get("Summary of Impact:", "")
            response = sec.get("How did we respond?") or sec.get("Mitigation:", "")
            later = [v for k, v in sec.items() if k not in ("What happened?", "Summary of Impact:")]
            tid = re.search(r"Tracking ID:\s*([A-Z0-9-]+)", row["description"])
            # A few reviews share a tracking id (one incident, several reviews): keep both, apart.
            iid = f"azure:{tid.group(1) if tid else n}"
            iid = iid if iid not in seen else f"{iid}-{n}"
            seen.add(iid)
            tz = label_tz(row.get("label_timezone"), TZ_AZURE)
            created = _dt(row.get("label_start_time"), tz)
            if created is None:
                yield Skipped(iid, f"start time {row.get('label_start_time')!r} in zone "
                                   f"{row.get('label_timezone')!r} unreadable")  # fmt: skip
                continue
            yield HistoricalIncident(
                id=iid,
                title=re.sub(r"^(Post Incident Review \(PIR\)|RCA)\s*[-–]\s*", "", title).strip() or title,
                text=happened,
                # Not `label_service_name`: an annotation (it fixes `service_category`); a PIR names no service field.
                service=None,
                source="azure",
                created_at=created,
                resolved_at=_dt(row.get("label_end_time"), tz),
                labels=_cloud_labels(row),
                resolution=response,
                later_text="\n".join(later),
                link="https://azure.status.microsoft/en-us/status/history/",
            )


def _gcp_updates(description: str) -> list[dict]:
    # The column is a NumPy repr: arrays inside, and list items separated by newlines instead of commas.
    cleaned = re.sub(r"array\((\[.*?\]),\s*dtype=object\)", r"\1", description, flags=re.S)
    cleaned = re.sub(r"}\s*\n\s*{", "}, {", cleaned)
    try:
        updates = ast.literal_eval(cleaned)
    except (ValueError, SyntaxError):
        return []
    return sorted((u for u in updates if isinstance(u, dict)), key=lambda u: u.get("created") or "")


def gcp(path: Path) -> Iterator[HistoricalIncident | Skipped]:
    with path.open(encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), 1):
            raw = _gcp_updates(row["description"])
            updates = [squash(u.get("text") or "") for u in raw]
            posted = [t for u in raw if (t := _dt(u.get("created"), None))]  # the feed's own UTC times
            first = updates[0] if updates else ""
            iid = f"gcp:{row.get('') or n}"
            tz = label_tz(row.get("label_timezone"), TZ_GCP)
            # Opened: the labelled start (in its zone), else when the first update was posted.
            created = _dt(row.get("label_start_time"), tz) or (min(posted) if posted else None)
            if created is None:
                yield Skipped(iid, "no readable start time and no dated update")
                continue
            # Resolved: the fix is known once the last update (whose text is the resolution) was posted, and not
            # before the labelled end either; a label end alone (updates undated) or neither: as there is.
            ends = [t for t in (_dt(row.get("label_end_time"), tz), max(posted, default=None)) if t]
            yield HistoricalIncident(
                id=iid,
                title=(row.get("external_description") or "").strip(),
                text=first,
                # The feed's own product name (published with the incident), never the annotation `label_service_name`.
                service=(row.get("service") or "").strip() or None,
                source="gcp",
                created_at=created,
                resolved_at=max(ends) if ends else None,
                labels=_cloud_labels(row),
                resolution="\n".join(informative(updates[-2:])) if len(updates) > 1 else "",
                later_text="\n".join(updates[1:]),
                link="https://status.cloud.google.com/summary",
            )


def gcp_feed(path: Path) -> Iterator[HistoricalIncident | Skipped]:
    """Google Cloud's status feed (unlabelled): history only, the same fields as the labelled GCP rows read from the
    feed itself. Its labelled twins (the labelled rows were drawn from this feed) merge with them by text and time."""
    import pyarrow.parquet as pq  # only this adapter reads Parquet (the `eval` extra)

    rows: dict[str, dict] = {}
    for n, row in enumerate(pq.read_table(path).to_pylist(), 1):
        key = str(row.get("id") or f"row{n}")
        # an incident listed twice (its id under two years): the fuller copy
        if key not in rows or len(row.get("updates") or []) > len(rows[key].get("updates") or []):
            rows[key] = row
    for key, row in rows.items():
        raw = sorted(
            (u for u in row.get("updates") or [] if isinstance(u, dict)), key=lambda u: u.get("when") or ""
        )
        updates = [squash(u.get("text") or "") for u in raw]
        posted = [t for u in raw if (t := _dt(u.get("when") or u.get("created")))]
        iid = f"gcp-feed:{key}"
        created = _dt(row.get("event_start_time")) or (min(posted) if posted else None)
        if created is None:
            yield Skipped(iid, "no readable start time and no dated update")
            continue
        ends = [t for t in (_dt(row.get("event_end_time")), max(posted, default=None)) if t]
        yield HistoricalIncident(
            id=iid,
            title=(row.get("external_desc") or "").strip(),
            text=updates[0] if updates else "",
            service=(row.get("service_name") or "").strip() or None,
            source="gcp",
            created_at=created,
            resolved_at=max(ends) if ends else None,
            labels={},
            resolution="\n".join(informative(updates[-2:])) if len(updates) > 1 else "",
            later_text="\n".join(updates[1:]),
            link="https://status.cloud.google.com/summary",
        )


def github_status(path: Path) -> Iterator[HistoricalIncident | Skipped]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                if _dt(obj.get("created_at") or obj.get("started_at")) is None:  # the intake would say "now"
                    yield Skipped(f"github-status:{obj.get('id')}", "no readable created_at")
                    continue
                inc = incident_from_statuspage(obj, source="github-status")
                # Affected components are human labels too (the taxonomy drops ones it does not list).
                components = [c["name"] for c in obj.get("components") or [] if c.get("name")]
                if components:
                    inc.labels["component"] = components
                yield inc


DATASETS = {
    "genai-status": ("genai-status/incidents.csv", genai_status),
    "azure": ("cloud-labeled/azure_label.csv", azure),
    "gcp": ("cloud-labeled/gcp_label.csv", gcp),
    "gcp-feed": ("cloud-labeled/gcp_provider.parquet", gcp_feed),
    "github-status": ("github-status/incidents.jsonl", github_status),
}


def load_dataset(name: str, root: Path) -> list[HistoricalIncident]:
    """The dataset's incidents (records without a usable date left out)."""
    rel, adapter = DATASETS[name]
    return [i for i in adapter(root / rel) if isinstance(i, HistoricalIncident)]


TAXONOMIES = Path(__file__).resolve().parent / "taxonomies"


@functools.cache
def dataset_taxonomy(name: str) -> Taxonomy:
    return Taxonomy.load(TAXONOMIES / f"{name}.yaml")


def to_genai_labels(inc: HistoricalIncident) -> HistoricalIncident:
    """Cloud-labeled categories mapped onto the default GenAI taxonomy (the mapping is declared in
    taxonomies/cloud-labeled.yaml), for the demo history."""
    cloud = dataset_taxonomy("cloud-labeled")
    labels = {k: v for k, v in inc.labels.items() if k == "severity"}
    for field, mapping in cloud.maps_to_default.items():
        mapped = sorted({mapping[v] for v in inc.labels.get(field, []) if v in mapping})
        if mapped:
            # The default taxonomy is single-label: one label, preferring a specific one over "other".
            labels[field] = mapped[:1] if len(mapped) == 1 else [m for m in mapped if m != "other"][:1]
    return inc.model_copy(update={"labels": labels, "taxonomy": "genai"})
