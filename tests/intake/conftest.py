"""Shared by the sender and change-sender suites: one Slack emulator per module (their bots post into it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.emulators import SlackEmulator


@pytest.fixture(scope="module")
def emu() -> Iterator[SlackEmulator]:
    e = SlackEmulator()
    yield e
    e.close()
