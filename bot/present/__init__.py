"""Presentation: the same TriageDraft rendered for a terminal (and, later, Slack Block Kit)."""
