"""The fleet-wide drafting mode: `llm` (normal) or `retrieval-only` (the LLM switched off: the rollback).

Stored in the database with who set it and when, so `/triage mode ...` on one replica or `incibot mode ...` on
the command line is in force on every replica within `ttl_s` (each reads it at most that often). Only user ids
in `admin_user_ids` may switch it from Slack.
"""

from __future__ import annotations

import logging
import threading
import time

from bot.models import Mode, ModeChange
from bot.store.watch import WatchStore

log = logging.getLogger("incibot")


class ModeRefused(ValueError):
    """Not switched: why, in words for the person who asked."""


def parse_mode(word: str) -> Mode:
    try:
        return Mode(word.strip().lower())
    except ValueError:
        raise ModeRefused(
            f"unknown mode {word.strip()[:40]!r}: use one of {', '.join(m.value for m in Mode)}"
        ) from None


class ModeSwitch:
    def __init__(self, store: WatchStore, admin_user_ids: list[str], ttl_s: float = 2.0) -> None:
        self.store, self.admins, self.ttl_s = store, set(admin_user_ids), ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, ModeChange | None] = (-float("inf"), None)

    def current(self) -> ModeChange | None:
        """The latest switch (None: never switched, the bot drafts with the LLM)."""
        with self._lock:
            at, change = self._cached
            if time.monotonic() - at < self.ttl_s:
                return change
        change = self.store.latest_mode()
        with self._lock:
            self._cached = (time.monotonic(), change)
        return change

    @property
    def mode(self) -> Mode:
        change = self.current()
        return change.mode if change else Mode.LLM

    def set(self, word: str, user_id: str, *, admin_check: bool = True) -> ModeChange:
        """Switch the fleet (Slack: admins only; the command line is trusted as the operator)."""
        mode = parse_mode(word)
        if admin_check and user_id not in self.admins:
            raise ModeRefused("only the bot's admins (INCIBOT_ADMIN_USER_IDS) can switch the mode")
        change = self.store.add_mode(mode, user_id)
        log.warning("drafting mode set to %s by %s", mode, user_id)  # who and when: also kept in the database
        with self._lock:
            self._cached = (time.monotonic(), change)
        return change

    def note(self) -> str | None:
        """The line every post made in retrieval-only mode carries (None in LLM mode)."""
        change = self.current()
        if change is None or change.mode != Mode.RETRIEVAL_ONLY:
            return None
        return (
            f"Retrieval-only mode, set by {change.user_id} at {change.created_at:%Y-%m-%d %H:%M} UTC: the LLM is "
            "off on every replica (/triage mode llm turns it back on)."
        )
