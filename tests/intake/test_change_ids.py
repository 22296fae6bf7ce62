"""A change's id is redacted like its other text fields (issue 32: a key or an e-mail address in it was stored
and echoed), and deduplication by id still holds: the same id is redacted the same way every time, and two ids
that differ only in what is hidden stay two changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.clock import utcnow
from bot.config import Settings
from bot.intake.changes.receiver import ChangeIntake
from bot.models import ChangeEvent
from bot.store.sql import Store
from bot.triage.redact import redactor

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"


def intake(tmp_path: Path, **settings: Any) -> tuple[ChangeIntake, Store]:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    return ChangeIntake(Settings(**settings), store, redactor()), store


def change(id: str) -> ChangeEvent:
    return ChangeEvent(id=id, service="chat-api", kind="deploy", at=utcnow())


def test_an_id_holding_an_email_or_a_key_is_stored_and_answered_redacted(tmp_path: Path) -> None:
    ci, store = intake(tmp_path)
    for secret in ("jane.doe@corp.example", KEY):
        receipt = ci.receive(change(f"rollback-by-{secret}"))
        assert receipt.status == "accepted" and secret not in receipt.id, receipt
        stored = [c.id for c in store.changes.latest("chat-api", 50)]
        assert receipt.id in stored and not any(secret in i for i in stored)


def test_dedupe_by_id_still_holds(tmp_path: Path) -> None:
    ci, store = intake(tmp_path)
    first = ci.receive(change("rollback-by-jane.doe@corp.example"))
    again = ci.receive(change("rollback-by-jane.doe@corp.example"))  # a redelivery
    other = ci.receive(change("rollback-by-john.roe@corp.example"))  # another change, the same once redacted
    assert (first.status, again.status, other.status) == ("accepted", "duplicate", "accepted")
    assert first.id == again.id != other.id
    assert len(store.changes.latest("chat-api", 50)) == 2


def test_an_id_with_nothing_to_hide_is_kept_as_sent(tmp_path: Path) -> None:
    ci, _ = intake(tmp_path)
    assert ci.receive(change("Codertocat/Hello-World/deployments/145988746")).id == (
        "Codertocat/Hello-World/deployments/145988746"
    )
    plain, _ = intake(tmp_path / "off", redact_in_slack=False, redact_in_history=False)
    assert plain.receive(change(f"by-{KEY}")).id == f"by-{KEY}"  # redaction off: stored as sent
