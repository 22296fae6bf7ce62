"""A folder of post-mortems in Markdown, in the common templates (Google SRE, PagerDuty, Atlassian): sections
Summary, Impact, Timeline, Root cause, Resolution / Mitigation, Action items, and optional YAML front matter
(`title`, `date`, `service`, `id`, and any key the mapping names, such as `severity`).

Triage time: the title, Summary and Impact (what was seen). Later: the timeline, root cause and action items;
the resolution is Resolution / Mitigation, then the root cause. The opening time is the front matter's `date`,
else the first dated timeline entry; a document with neither is skipped (a made-up date would put it on the
wrong side of every time split).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from bot.intake.importers.base import ImportOptions, Page, Skipped, SourceError, parse_time
from bot.models import HistoricalIncident
from bot.text import html_to_text, squash

NAME = "markdown"
CREDENTIAL = "read access to the folder"
MAX_FILE_BYTES = 2_000_000

# Section headings (any level, lower case, trailing punctuation dropped) -> the part they are.
SECTIONS = {
    "summary": "summary", "overview": "summary", "description": "summary", "what happened": "summary",
    "executive summary": "summary", "impact": "impact", "customer impact": "impact", "user impact": "impact",
    "timeline": "timeline", "root cause": "cause", "root causes": "cause", "cause": "cause",
    "contributing factors": "cause", "root cause analysis": "cause", "resolution": "resolution",
    "mitigation": "resolution", "resolution and recovery": "resolution", "remediation": "resolution",
    "resolution / mitigation": "resolution", "recovery": "resolution", "action items": "actions",
    "follow-ups": "actions", "follow up actions": "actions", "corrective actions": "actions",
    "lessons learned": "actions",
}  # fmt: skip
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# "2024-03-01 14:05 UTC", "2024-03-01T14:05:00Z", "2024-03-01 14:05 +02:00": a dated timeline entry.
_DATED = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2})?)\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?(?![\d:])",
    re.IGNORECASE,
)


def sections(body: str) -> tuple[str | None, dict[str, str]]:
    """The first H1 (the title, if the front matter has none) and the text of each known section; text before the
    first heading, or under an unknown one, goes to '' (read as the summary when there is none)."""
    title: str | None = None
    part = ""
    lines: dict[str, list[str]] = {}
    for line in body.splitlines():
        if m := _HEADING.match(line):
            name = m.group(2).strip().strip("*_").rstrip(":").strip().lower()
            if len(m.group(1)) == 1 and title is None and name not in SECTIONS:
                title = m.group(2).strip()
                continue
            part = SECTIONS.get(name, part if part in ("timeline", "actions") else "")
            continue
        lines.setdefault(part, []).append(line)
    return title, {k: html_to_text(squash("\n".join(v))) for k, v in lines.items()}


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return parse_time(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    return parse_time(str(value)) if value else None


def _first_dated(timeline: str) -> datetime | None:
    for m in _DATED.finditer(timeline):
        zone = (m.group(3) or "").upper()
        zone = "+00:00" if zone in ("", "Z", "UTC", "GMT") else zone
        if len(zone) == 5:  # +0200
            zone = f"{zone[:3]}:{zone[3:]}"
        clock = m.group(2) if m.group(2).count(":") == 2 else f"{m.group(2)}:00"
        if when := parse_time(f"{m.group(1)}T{clock.zfill(8)}{zone}"):
            return when
    return None


def incident_from_markdown(path: Path, rel: str, options: ImportOptions) -> HistoricalIncident | Skipped:
    rid = f"{NAME}:{rel}"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return Skipped(id=rid, reason=f"larger than {MAX_FILE_BYTES:,} bytes")
        post = frontmatter.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        return Skipped(id=rid, reason="not UTF-8")
    except (yaml.YAMLError, ValueError) as e:
        return Skipped(id=rid, reason=f"front matter is not valid YAML ({type(e).__name__})")
    meta = post.metadata if isinstance(post.metadata, dict) else {}
    heading, parts = sections(post.content)
    summary = parts.get("summary") or parts.get("", "")
    text = "\n".join(p for p in (summary, parts.get("impact", "")) if p)
    title = squash(str(meta.get("title") or heading or ""))
    if not text:
        return Skipped(id=rid, reason="no Summary or Impact text (nothing known at triage time)")
    created = _when(meta.get("date")) or _first_dated(parts.get("timeline", ""))
    if created is None:
        return Skipped(id=rid, reason="no date (front matter `date` or a dated timeline entry)")
    resolution = "\n".join(p for p in (parts.get("resolution", ""), parts.get("cause", "")) if p)
    later = "\n".join(p for k in ("timeline", "cause", "resolution", "actions") if (p := parts.get(k, "")))
    pairs = [(str(k), str(v)) for k, v in meta.items() if isinstance(v, str | int)]
    pairs += [(str(k), str(x)) for k, v in meta.items() if isinstance(v, list) for x in v]
    return HistoricalIncident(
        id=f"{NAME}:{meta['id']}" if meta.get("id") else rid,
        title=title or Path(rel).stem.replace("-", " ").replace("_", " "),
        text=text,
        service=str(meta["service"]) if meta.get("service") else None,
        source=NAME,
        created_at=created,
        resolved_at=_when(meta.get("resolved")),
        link=str(meta["link"]) if meta.get("link") else None,
        labels=options.mapping.labels(NAME, pairs),
        resolution=resolution,
        later_text=later,
    )


class MarkdownImporter:
    name = NAME
    needs_path = True
    credential = CREDENTIAL

    def pages(self, options: ImportOptions, cursor: str | None) -> Iterator[Page]:
        root = options.path
        if root is None or not root.is_dir():
            raise SourceError(f"{NAME}: {root} is not a folder; give the folder of post-mortems (*.md)")
        # Sorted by path, so the cursor (the last file done) resumes where it stopped.
        files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.md") if p.is_file())
        start = sum(1 for rel, _ in files if cursor is not None and rel <= cursor)
        size = options.settings.import_page_size
        for i in range(start, len(files), size):
            chunk = files[i : i + size]
            records: list[HistoricalIncident | Skipped] = []
            for rel, path in chunk:
                rec = incident_from_markdown(path, rel, options)
                if isinstance(rec, HistoricalIncident) and options.since and rec.created_at < options.since:
                    rec = Skipped(id=rec.id, reason="before --since")
                records.append(rec)
            last = i + size >= len(files)
            yield Page(records=records, next_cursor=None if last else chunk[-1][0])
