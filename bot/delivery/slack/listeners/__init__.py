"""Slack listeners, one per file, registered here."""

from __future__ import annotations

from slack_bolt import App

from bot.delivery.slack.listeners import (
    confirm_button,
    correct_button,
    correct_submission,
    home_opened,
    reject_button,
    reject_submission,
    triage_command,
)
from bot.service import TriageService


def register(app: App, service: TriageService) -> None:
    app.command("/triage")(triage_command.make(service))
    app.action("confirm")(confirm_button.make(service))
    app.action("correct")(correct_button.make(service))
    app.action("reject")(reject_button.make(service))
    app.view("correct_submit")(correct_submission.make(service))
    app.view("reject_submit")(reject_submission.make(service))
    app.event("app_home_opened")(home_opened.make(service))
