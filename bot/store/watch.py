"""What the bot records about itself, for watching it: the drafting mode, alert episodes, verdicts with the drafts
they judged, queue and feedback figures (bot/watch/mode.py, bot/watch/monitor.py, bot/watch/metrics.py, bot/watch/report.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Engine, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.clock import aware, utcnow
from bot.models import Mode, ModeChange, TriageDraft, Verdict
from bot.store.schema import alerts, feedback, modes, tickets
from bot.store.tickets import WAITING, TicketKind, TicketState


class QueueStats(BaseModel):
    accepted: int  # tickets ever accepted (thread replies not counted)
    waiting: int  # to be posted
    oldest: datetime | None  # when the oldest waiting one arrived


class WatchStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def latest_mode(self) -> ModeChange | None:
        with self.engine.connect() as c:
            row = c.execute(select(modes).order_by(modes.c.id.desc()).limit(1)).mappings().first()
        return (
            ModeChange(mode=Mode(row["mode"]), user_id=row["user_id"], created_at=aware(row["created_at"]))
            if row
            else None
        )

    def add_mode(self, mode: Mode, user_id: str) -> ModeChange:
        change = ModeChange(mode=mode, user_id=user_id, created_at=utcnow())
        with self.engine.begin() as c:
            c.execute(insert(modes).values(mode=mode.value, user_id=user_id, created_at=change.created_at))
        return change

    def set_alert(self, name: str, is_open: bool, detail: str) -> bool:
        """Open or close an alert episode; True only for the one caller (of all replicas) that changed it."""
        now = utcnow()
        with self.engine.begin() as c:
            changed = c.execute(
                update(alerts).where(alerts.c.name == name, alerts.c.open == int(not is_open))
                .values(open=int(is_open), detail=detail, changed_at=now)
            ).rowcount  # fmt: skip
            if changed:
                return True
            if not is_open or c.execute(select(alerts.c.name).where(alerts.c.name == name)).first():
                return False
        try:
            with self.engine.begin() as c:
                c.execute(insert(alerts).values(name=name, open=1, detail=detail, changed_at=now))
            return True
        except IntegrityError:  # another replica opened it first
            return False

    def verdicts(self, limit: int | None = None, since: datetime | None = None) -> list[Verdict]:
        """Engineer verdicts with the draft each judged, oldest first (the newest `limit` of them)."""
        query = select(feedback, tickets.c.draft).join(tickets, tickets.c.key == feedback.c.ticket_key)
        if since is not None:
            query = query.where(feedback.c.created_at >= since)
        query = query.order_by(feedback.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as c:
            rows = list(c.execute(query).mappings())
        return [
            Verdict(ticket_key=r["ticket_key"], action=r["action"], user_id=r["user_id"], labels=r["labels"],
                    created_at=aware(r["created_at"]), fix_playbook=r["fix_playbook"],
                    draft=TriageDraft.model_validate(r["draft"]) if r["draft"] else None)
            for r in reversed(rows)
        ]  # fmt: skip

    def recent_drafts(self, limit: int) -> list[TriageDraft]:
        """The newest final drafts (status drafted), newest first."""
        query = (
            select(tickets.c.draft).where(tickets.c.status == TicketState.DRAFTED.value, tickets.c.draft.is_not(None))
            .order_by(tickets.c.updated_at.desc()).limit(limit)
        )  # fmt: skip
        with self.engine.connect() as c:
            return [TriageDraft.model_validate(r[0]) for r in c.execute(query)]

    def drafts_since(self, since: datetime) -> list[TriageDraft]:
        query = select(tickets.c.draft).where(tickets.c.created_at >= since, tickets.c.draft.is_not(None))
        with self.engine.connect() as c:
            return [TriageDraft.model_validate(r[0]) for r in c.execute(query.order_by(tickets.c.created_at))]

    def queue_stats(self) -> QueueStats:
        waiting = tickets.c.status.in_([s.value for s in WAITING])
        with self.engine.connect() as c:
            accepted = c.execute(
                select(func.count()).where(
                    or_(tickets.c.kind.is_(None), tickets.c.kind == TicketKind.TICKET.value)
                )
            ).scalar()
            n, oldest = c.execute(select(func.count(), func.min(tickets.c.created_at)).where(waiting)).one()
        return QueueStats(accepted=accepted or 0, waiting=n or 0, oldest=aware(oldest) if oldest else None)

    def feedback_counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(select(feedback.c.action, func.count()).group_by(feedback.c.action))
            return {action: n for action, n in rows}
