"""The bot's own quality, from the engineers' verdicts: per field and per model, was the drafted label accepted?

A confirm accepts every field of the draft; a correct accepts the fields whose label the engineer kept and
rejects the others; a reject rejects them all. `acceptance` reduces a window of verdicts to rates; the monitor
(`bot/watch/monitor.py`), `/metrics` and `incibot report` all read these same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel

from bot.models import Verdict


class FieldVerdict(BaseModel):
    ticket_key: str
    model: str
    field: str
    drafted: str
    corrected_to: str | None  # the engineer's label where it differs
    accepted: bool
    confidence: float
    created_at: datetime


class Rate(BaseModel):
    n: int
    accepted: int

    @property
    def value(self) -> float | None:
        return self.accepted / self.n if self.n else None  # no verdicts: no rate, never a division by zero


def field_verdicts(verdicts: list[Verdict]) -> list[FieldVerdict]:
    out = []
    for v in verdicts:
        if v.draft is None:
            continue
        for field, decision in v.draft.labels.items():
            kept: bool
            corrected: str | None = None
            if v.action == "confirm":
                kept = True
            elif v.action == "reject":
                kept = False
            else:
                given = (v.labels or {}).get(field)
                kept = not given or decision.label in given
                corrected = None if kept or not given else given[0]
            out.append(FieldVerdict(ticket_key=v.ticket_key, model=v.draft.llm.model, field=field,
                                    drafted=decision.label, corrected_to=corrected, accepted=kept,
                                    confidence=decision.confidence, created_at=v.created_at))  # fmt: skip
    return out


def acceptance(fields: list[FieldVerdict]) -> dict[tuple[str, str], Rate]:
    """(field, model) -> acceptance rate of the drafted label."""
    n: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for f in fields:
        n[(f.field, f.model)][0] += 1
        n[(f.field, f.model)][1] += int(f.accepted)
    return {k: Rate(n=a, accepted=b) for k, (a, b) in sorted(n.items())}


def confident_precision(fields: list[FieldVerdict], confident_at: float) -> Rate:
    """How often a label the bot called confident was accepted."""
    sure = [f for f in fields if f.confidence >= confident_at]
    return Rate(n=len(sure), accepted=sum(f.accepted for f in sure))
