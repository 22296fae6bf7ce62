"""Reading tickets and history files from disk, with errors that name the file and record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.intake.statuspage import incident_from_statuspage
from bot.models import HistoricalIncident, Ticket
from bot.text import TooDeep, clean

FORMATS = ("jsonl", "statuspage")
MAX_TICKET_BYTES = 2_000_000


class InputError(ValueError):
    """Input the bot cannot read; the message names the file and the record."""


def _read_text(path: Path, limit: int | None = None) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    if limit is not None and len(data) > limit:
        raise InputError(f"{path}: {len(data):,} bytes is more than the {limit:,} a ticket may have")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{path}: not UTF-8 (invalid byte at offset {e.start}, line {line})") from e


def _validation_message(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'record'}: {x['msg']}" for x in e.errors()[:3])


def ticket_from_dict(obj: Any, default_id: str) -> Ticket:
    """The generic ticket JSON: {id, title, text|description, service, component, source, created_at}."""
    if not isinstance(obj, dict):
        raise InputError("a ticket must be a JSON object")
    data = dict(obj)
    if "text" not in data and "description" in data:
        data["text"] = data.pop("description")
    data.setdefault("id", default_id)
    known = set(Ticket.model_fields) - {"raw"}
    fields = {k: v for k, v in data.items() if k in known}
    try:
        return Ticket.model_validate({**fields, "raw": obj})
    except ValidationError as e:
        raise InputError(f"invalid ticket: {_validation_message(e)}") from e


def read_ticket(path: Path) -> Ticket:
    text = _read_text(path, MAX_TICKET_BYTES)
    try:
        obj = clean(json.loads(text))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except (TooDeep, RecursionError) as e:
        raise InputError(f"{path}: nested too deeply ({type(e).__name__})") from e
    try:
        return ticket_from_dict(obj, default_id=path.stem)
    except InputError as e:
        raise InputError(f"{path}: {e}") from e


def _records(path: Path, text: str) -> list[tuple[int, Any]]:
    """(line, object) pairs from one JSON document (a list, {"incidents": [...]}, or one record), else JSONL.

    The whole text is parsed first, never sniffed: Statuspage's `/api/v2/incidents.json`, pretty-printed, opens
    with its `page` block, so "incidents" can be far from the start. Only a first document followed by more
    ("Extra data") is read as JSONL, line by line.
    """
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":  # the first document itself is broken: say where
            raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
        return _jsonl(path, text, e)
    except RecursionError as e:
        raise InputError(f"{path}: nested too deeply ({type(e).__name__})") from e
    if isinstance(doc, dict) and "incidents" in doc:
        doc = doc["incidents"]
        if not isinstance(doc, list):
            raise InputError(f'{path}: "incidents" is not a list')
    if isinstance(doc, list):
        return [(i + 1, x) for i, x in enumerate(doc)]
    return [(1, doc)]  # one record: a one-line JSONL file, or a single pretty-printed record


def _jsonl(path: Path, text: str, doc_error: json.JSONDecodeError) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            if not out:  # not JSONL at all: one multi-line document with something after it
                d = doc_error
                raise InputError(
                    f"{path}: not valid JSON (line {d.lineno}, column {d.colno}: {d.msg})"
                ) from d
            raise InputError(f"{path}: line {n} is not valid JSON ({e.msg})") from e
        except RecursionError as e:
            raise InputError(f"{path}: line {n} is nested too deeply ({type(e).__name__})") from e
    return out


def read_history(path: Path, fmt: str) -> list[HistoricalIncident]:
    """Every record of the file, or an InputError naming the first bad one: nothing half-read."""
    if fmt not in FORMATS:
        raise InputError(f"unknown import format {fmt!r}; use one of: {', '.join(FORMATS)}")
    convert: Callable[[Any], HistoricalIncident] = (
        HistoricalIncident.model_validate if fmt == "jsonl" else incident_from_statuspage
    )
    incidents = []
    for n, obj in _records(path, _read_text(path)):
        try:
            incidents.append(convert(clean(obj)))
        except TooDeep as e:
            raise InputError(f"{path}: record {n}: {e}") from e
        except ValidationError as e:
            raise InputError(f"{path}: record {n}: {_validation_message(e)}") from e
        except (ValueError, TypeError, AttributeError) as e:
            raise InputError(f"{path}: record {n}: {e}") from e
    if not incidents:
        raise InputError(f"{path}: no records")
    return incidents
