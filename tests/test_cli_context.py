"""`incibot triage` reads the bot's database: the terminal and `--json` show recent changes to the ticket's
service, as the post does."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.clock import utcnow
from bot.config import Settings
from bot.models import ChangeEvent
from bot.store.factory import open_sql


def test_terminal_triage_shows_recent_changes_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"  # the conftest points INCIBOT_DATA_DIR here
    store = open_sql(Settings(data_dir=data, seed_demo_history=False))
    now = utcnow()
    store.changes.add(ChangeEvent(id="d1", service="chat-api", kind="deploy", summary="router v2.3.1",
                                  author="ci-bot", at=now - timedelta(minutes=12)))  # fmt: skip
    ticket = tmp_path / "t.json"
    ticket.write_text(json.dumps({"id": "t1", "title": "Elevated 5xx on chat completions", "service": "chat-api",
                                  "created_at": now.isoformat()}))  # fmt: skip
    # No demo history to seed (embedding it is most of a first triage, and the seeding tests' job): the recent
    # changes are read from the database whatever the history holds.
    monkeypatch.setenv("INCIBOT_SEED_DEMO_HISTORY", "false")
    runner = CliRunner()
    shown = runner.invoke(app, ["triage", "--ticket", str(ticket), "--no-llm"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    flat = re.sub(r"[\s│╭╮╰╯─]+", " ", shown.output)  # however the terminal's width wrapped the panel
    assert "Recent changes to chat-api: deploy 'router v2.3.1' by ci-bot, 12 min before the alert" in flat, (
        flat
    )
    as_json = runner.invoke(app, ["triage", "--ticket", str(ticket), "--no-llm", "--json"])
    assert as_json.exit_code == 0, as_json.output
    ctx = json.loads(as_json.output)["context"]
    assert ctx["service"] == "chat-api" and ctx["changes"][0]["change"]["summary"] == "router v2.3.1"
